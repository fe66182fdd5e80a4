"""Command-line checks found by trying cmkt as a new user: refused early with one clear line,
nothing left behind; validate and export say what they scored."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from cmkt.cli import EPILOG, main

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "assets" / "demo" / "demo-cumulative"


def run_cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_refusal(rc, err, *needles):
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("args, needles", [
    (["--epochs", "0"], ["--epochs 0", "at least 1 epoch"]),
    (["--epochs", "-3"], ["--epochs -3", "at least 1 epoch"]),
    (["--set", "epochs=0"], ["epochs=0", "at least 1 epoch"]),
    (["--set", "lr=abc"], ["--set lr=abc", "lr must be a number", "'abc'"]),
    (["--set", "n_blocks=1.5"], ["n_blocks must be an integer"]),
    (["--set", "wandb=maybe"], ["wandb must be true or false"]),
])
def test_train_refuses_bad_options_before_making_a_run(capsys, tmp_path, args, needles):
    rc, _, err = run_cli(capsys, "train", "--data", "sim", "--out", tmp_path / "runs", *args)
    one_line_refusal(rc, err, *needles)
    assert not (tmp_path / "runs").exists()


def test_wandb_without_the_package_leaves_no_queued_run(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)          # as if it were not installed
    rc, _, err = run_cli(capsys, "train", "--data", "sim", "--wandb", "--out", tmp_path / "runs")
    one_line_refusal(rc, err, "--wandb needs the wandb package")
    assert not (tmp_path / "runs").exists()


def test_help_export_example_uses_a_real_student_id():
    from cmkt.data.sim import simulate
    m = re.search(r"export runs/RUN --data sim --student (\S+)", EPILOG)
    assert m, EPILOG
    assert m.group(1) in simulate(students=300, skills=12, seed=0, split="test").student_ids


def test_export_unknown_student_names_the_split_and_shows_ids(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "export", DEMO, "--data", "sim", "--student", "S0001",
                         "--out", tmp_path / "x.csv")
    one_line_refusal(rc, err, "'S0001'", "test split of sim", "T0001, T0002")
    assert not (tmp_path / "x.csv").exists()


def test_validate_defaults_to_the_runs_data_and_says_what_it_scored(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "validate", DEMO, "--json")
    assert rc == 0, err
    js = json.loads(out)
    assert js["run"] == str(DEMO.resolve()) and js["data"] == "sim" and js["split"] == "test"
    assert js["n_students"] == 300 and 0.5 < js["auc"] < 1
    # a checkpoint file away from its run folder: the data comes from the checkpoint's own meta
    solo = tmp_path / "solo.safetensors"
    solo.write_bytes((DEMO / "best.safetensors").read_bytes())
    rc, out, err = run_cli(capsys, "validate", solo, "--split", "valid", "--json")
    assert rc == 0, err
    js2 = json.loads(out)
    assert (js2["run"], js2["data"], js2["split"]) == (str(solo.resolve()), "sim", "valid")
    # on a single file, the whole file is scored: no split
    f = tmp_path / "one.csv"
    f.write_text("3\n1,2,3\n1,0,1\n")
    rc, out, err = run_cli(capsys, "validate", DEMO, "--data", f, "--split", "train", "--json")
    assert rc == 0, err
    js3 = json.loads(out)
    assert js3["data"] == str(f) and js3["split"] is None and js3["n_students"] == 1
