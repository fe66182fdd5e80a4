"""Audit-ready predictions: `cmkt export --format kt-audit`, checked by the kt-audit package itself."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmkt.cli import main
from cmkt.runs.audit import COLUMNS, kc_id

# big enough for kt-audit's cheap baseline (>= 50 labelled train rows, >= 30 evaluation rows),
# small enough to train in seconds; sim students have real learning curves
DATA = "sim:students=300,skills=6"
TRAIN = dict(d_model="32", n_heads="2", d_ff="64", ema="0", batch_size="16", lr="0.005", gain_encoder="value",
             num_threads="1")
EPOCHS = 3


def kt_audit() -> str:
    exe = Path(sys.executable).parent / "kt-audit"
    found = str(exe) if exe.exists() else shutil.which("kt-audit")
    if not found:
        pytest.skip("kt-audit is not installed (pip install -r requirements-dev.txt)")
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from cmkt.runs import create_run, execute_run
    path = create_run(tmp_path_factory.mktemp("audit_runs"), data=DATA, epochs=EPOCHS, name="small",
                      overrides=TRAIN)
    execute_run(path)
    return path


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "preds.csv"
    assert main(["export", str(run), "--data", DATA, "--all", "--format", "kt-audit", "--out", str(out)]) == 0
    return out


def test_kc_ids_are_never_bare_numbers():
    assert kc_id("3") == "kc3" and kc_id(7) == "kc7" and kc_id("1.5") == "kc1.5"
    assert kc_id("Addition") == "Addition" and kc_id("a|b") == "a/b"


def test_the_file_keeps_the_kt_audit_contract(exported):
    from cmkt.data.source import load_eval_data
    df = pd.read_csv(exported, dtype={"kc_ids": str})
    assert tuple(df.columns) == COLUMNS
    assert set(df["split"]) == {"train", "valid", "test"}
    assert df["y_true"].isin([0, 1]).all() and df["y_pred"].between(0, 1).all()
    assert not df["kc_ids"].str.fullmatch(r"\d+").any()
    assert not df.duplicated(["user_id", "timestamp"]).any()
    for _, g in df.groupby("user_id"):
        assert (np.diff(g["timestamp"].to_numpy()) > 0).all()
        assert g["timestamp"].min() == 2                      # the first step (no prediction) is not written
    # every step but each student's first, split by split
    for split in ("train", "valid", "test"):
        ds = load_eval_data(DATA, split, sim_students=300, sim_skills=6)
        assert (df["split"] == split).sum() == int((np.asarray(ds.lengths) - 1).sum())


def test_kt_audit_passes_with_validates_auc_and_beats_its_baseline(run, exported, tmp_path, capsys):
    proc = subprocess.run([kt_audit(), "run", str(exported), "--out", str(tmp_path / "report")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["verdict"] in ("pass", "warn")
    capsys.readouterr()
    assert main(["validate", str(run), "--data", DATA, "--json"]) == 0
    auc = json.loads(capsys.readouterr().out)["auc"]
    assert round(report["metrics"]["test"]["auc"], 4) == round(auc, 4)
    base = report["baselines"]["__all__"]
    assert base["model_auc"] == pytest.approx(auc, abs=1e-6)
    assert base["delta"] > 0 and base["model_auc"] > base["baseline_auc"]
    assert not [f for f in report["findings"] if f["check"] == "cheap_baseline" and f["severity"] == "error"]
    assert f"vs model {auc:.4f}" in proc.stdout


def test_a_folder_with_a_student_in_train_and_test_keeps_time_order(run, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)

    def log(users, n):
        rows = [f"{u},{k},{c}" for u in users for k, c in zip(rng.integers(1, 7, n), rng.integers(0, 2, n))]
        return "user_id,skill_id,correct\n" + "\n".join(rows) + "\n"
    (folder / "train.csv").write_text(log(["a", "b", "c", "d", "e"], 6))
    (folder / "test.csv").write_text(log(["a", "z"], 4))          # a continues into the test file
    out = tmp_path / "f.csv"
    capsys.readouterr()
    assert main(["export", str(run), "--data", str(folder), "--all", "--format", "kt-audit", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    a = df[df["user_id"] == "a"]
    train_ts, test_ts = a.loc[a["split"] != "test", "timestamp"], a.loc[a["split"] == "test", "timestamp"]
    if len(train_ts):
        assert train_ts.max() < test_ts.min()
    assert list(test_ts) == [6 + 2, 6 + 3, 6 + 4]                  # counted on after the 6 training steps
    assert (df["split"] == "test").sum() == 2 * 3
    # a single file: one split, test, and a note that the baseline needs train rows
    one = tmp_path / "one.csv"
    assert main(["export", str(run), "--data", str(folder / "test.csv"), "--all", "--format", "kt-audit",
                 "--out", str(one)]) == 0
    assert set(pd.read_csv(one)["split"]) == {"test"}
    assert "skips its cheap baseline" in capsys.readouterr().err


def test_kt_audit_format_refusals(run, tmp_path, capsys):
    assert main(["export", str(run), "--data", DATA, "--format", "kt-audit", "--student", "T0001",
                 "--out", str(tmp_path / "x.csv")]) == 2
    assert main(["export", str(run), "--data", DATA, "--all", "--format", "kt-audit",
                 "--out", str(tmp_path / "x.parquet")]) == 2
    assert "name the file *.csv" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_windows_scored_afresh_write_no_row_without_a_prediction():
    from cmkt.analysis.scoring import Trajectories
    from cmkt.runs.audit import audit_frame
    offsets = np.array([0, 5, 8])
    probs = np.linspace(0.1, 0.9, 8).astype(np.float32)
    starts = np.zeros(8, bool)
    starts[[0, 3, 5]] = True                                      # student u0 in two windows
    probs[starts] = np.nan
    t = Trajectories(["u0", "u1"], offsets, np.array([0, 1, 0, 1, 0, 1, 1, 0]), np.array([1, 0, 1, 1, 0, 1, 0, 1]),
                     probs, np.zeros((8, 2), np.float32), np.zeros((8, 2), np.float32), "cumulative", starts=starts)
    base = {"u1": 10}                                             # u1 had 10 steps in an earlier split
    df = audit_frame(t, ["3", "Fractions"], "test", base)
    assert df["y_pred"].notna().all() and len(df) == 8 - 3
    assert list(df["timestamp"]) == [2, 3, 5, 12, 13] and base == {"u0": 5, "u1": 13}
    assert list(df["kc_ids"]) == ["Fractions", "kc3", "kc3", "Fractions", "kc3"]


def test_an_imported_reference_model_gets_the_same_evidence(tmp_path, capsys):
    """gainakt2-ref (windows scored afresh): reference numbers per window, a tie with its copy,
    and an audit file without a missing prediction whose test AUC is validate's."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from reference_fixtures import published_state, write_format_b
    ck = write_format_b(tmp_path / "saved_model" / "gainakt2_cumulative_mastery_v1", published_state(2))
    assert main(["import", str(ck), "--out", str(tmp_path / "runs")]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    copy = tmp_path / "runs" / "copy"
    shutil.copytree(run, copy)
    data = "sim:students=60,skills=6"                  # concept ids 1..6 < num_c 7, used as they are
    assert main(["validate", str(run), "--data", data, "--json"]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v["reference"]["students_analyzed"] > 60    # long students: one sequence per window
    assert v["reference"]["negative_gain_rate"] == 0 and v["reference"]["monotonicity_violation_rate"] == 0
    assert main(["compare", str(run), str(copy), "--data", data, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)["differences"][0]
    assert d["auc"]["verdict"] == "tie" and d["auc"]["a"] == pytest.approx(v["auc"], abs=1e-12)
    out = tmp_path / "ref.csv"
    assert main(["export", str(run), "--data", data, "--all", "--format", "kt-audit", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert df["y_pred"].between(0, 1).all()
    proc = subprocess.run([kt_audit(), "run", str(out), "--out", str(tmp_path / "rep")],
                          capture_output=True, text=True, timeout=300)
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert round(rep["metrics"]["test"]["auc"], 4) == round(v["auc"], 4)
    # random weights: the audit fails it, and only for losing to the cheap baseline
    errors = {f["check"] for f in rep["findings"] if f["severity"] == "error"}
    assert errors <= {"cheap_baseline"} and proc.returncode == (1 if errors else 0)
