"""Hostile checkpoints, unsafe run names, torn writes and concurrent runs."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cmkt.runs import jobs
from cmkt.runs.checkpoint import load_checkpoint, save_checkpoint
from cmkt.errors import CheckpointError
from cmkt.io import write_json_atomic, read_json
from cmkt.model import GainAKT2, ModelConfig
from cmkt.runs import RunError, create_run, read_status, run_path

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(max_len=20, d_model=16, n_heads=2, n_blocks=1, d_ff=16)


@pytest.fixture
def good_ckpt(tmp_path):
    model = GainAKT2(ModelConfig(num_skills=5, **SMALL))
    return save_checkpoint(model, tmp_path / "good.safetensors", {"skill_labels": list("12345")})


def cli_validate(path):
    return subprocess.run([sys.executable, "-m", "cmkt", "validate", str(path), "--data", "sim"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def assert_refused(path, needle):
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert Path(path).name in str(e.value) and needle in str(e.value)
    proc = cli_validate(path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and Path(path).name in proc.stderr


def test_good_checkpoint_roundtrip(good_ckpt):
    model, meta = load_checkpoint(good_ckpt)
    assert model.cfg.num_skills == 5 and meta["skill_labels"] == list("12345")


def test_truncated_checkpoint(good_ckpt, tmp_path):
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(good_ckpt.read_bytes()[: good_ckpt.stat().st_size // 2])
    assert_refused(bad, "not a readable checkpoint")


def test_random_bytes_and_empty(tmp_path):
    bad = tmp_path / "random.safetensors"
    bad.write_bytes(os.urandom(5000))
    assert_refused(bad, "checkpoint")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert_refused(empty, "empty")


def test_another_models_weights(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.randn(3, 3), "bias": torch.randn(3)}, str(foreign))
    assert_refused(foreign, "not a cmkt checkpoint")


def test_weights_that_do_not_fit_the_config(tmp_path):
    """A cmkt header claiming 10 skills over the weights of a 5-skill model."""
    model = GainAKT2(ModelConfig(num_skills=5, **SMALL))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    cfg = dict(ModelConfig(num_skills=10, **SMALL).to_dict())
    bad = tmp_path / "mismatch.safetensors"
    save_file(state, str(bad), metadata={"format": "cmkt-checkpoint-v1", "model_config": json.dumps(cfg), "meta": "{}"})
    assert_refused(bad, "do not fit")


@pytest.mark.parametrize("key, value", [("mode", "original"), ("num_skills", 7)])
def test_run_config_disagreeing_with_checkpoint(tmp_path, key, value):
    run = tmp_path / "run1"
    run.mkdir()
    model = GainAKT2(ModelConfig(num_skills=5, **SMALL))
    save_checkpoint(model, run / "best.safetensors")
    (run / "config.json").write_text(json.dumps({"model": dict(model.cfg.to_dict(), **{key: value})}))
    with pytest.raises(CheckpointError, match=f"{key}.*config.json"):
        load_checkpoint(run)


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_pickle_payload_is_refused_without_running(tmp_path, how, suffix):
    marker = tmp_path / "PWNED"
    evil = tmp_path / f"evil{suffix}"
    obj = {"model_config": {"num_skills": 5}, "state_dict": {}, "x": Payload(marker)}
    if how == "torch.save":
        torch.save(obj, evil)
    else:
        evil.write_bytes(pickle.dumps(obj))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(evil)
    assert "evil" in str(e.value) and "nothing in it was run" in str(e.value)
    assert "weights_only" not in str(e.value) and "\x1b" not in str(e.value)   # no advice to turn safety off
    proc = cli_validate(evil)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not marker.exists(), "the payload ran"


def test_plain_torch_checkpoint_is_accepted(tmp_path):
    model = GainAKT2(ModelConfig(num_skills=4, **SMALL))
    f = tmp_path / "plain.pt"
    torch.save({"model_config": model.cfg.to_dict(), "state_dict": model.state_dict()}, f)
    loaded, _ = load_checkpoint(f)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a/b", "..", ".hidden", "", "x" * 300, "a\x00b"])
def test_run_names_cannot_escape_the_runs_folder(tmp_path, name):
    runs = tmp_path / "runs"
    runs.mkdir()
    victim = tmp_path / "evil"
    victim.mkdir()
    (victim / "config.json").write_text("{}")
    with pytest.raises(RunError):
        run_path(runs, name)
    with pytest.raises(RunError):
        jobs.delete_run(runs, name)
    with pytest.raises(RunError):
        create_run(runs, data="sim", name=name)
    assert (victim / "config.json").exists()
    assert list(runs.iterdir()) == []


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "status.json"
    write_json_atomic(target, {"v": 1})

    def boom(*a):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_json_atomic(target, {"v": 2})
    monkeypatch.undo()
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


WRITER = """
import sys
from cmkt.io import write_json_atomic
i = 0
while True:
    i += 1
    write_json_atomic(sys.argv[1], {"i": i, "pad": "x" * 200000})
"""


def test_killed_writer_never_leaves_a_torn_file(tmp_path):
    """A process rewriting a 200 kB JSON file as fast as it can is SIGKILLed at random
    moments; every read, during and after, is a whole file."""
    target = tmp_path / "status.json"
    write_json_atomic(target, {"i": 0, "pad": ""})
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=REPO)
        deadline = time.monotonic() + 1.0 + 0.3 * round_
        reads = 0
        while time.monotonic() < deadline:
            obj = json.loads(target.read_text())   # raises on a torn file
            assert "i" in obj
            reads += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert json.loads(target.read_text())["i"] >= 0
        assert reads > 10


def test_two_runs_at_once_in_one_folder(tmp_path):
    kw = dict(data="sim:students=120,skills=5", epochs=2, name="same-name",
              overrides={"d_model": "16", "n_heads": "2", "d_ff": "16", "max_len": "40"})
    a = jobs.start_run(tmp_path, mode="original", **kw)
    b = jobs.start_run(tmp_path, mode="cumulative", **kw)
    assert a != b and a.parent == b.parent == tmp_path
    for run in (a, b):
        assert jobs.wait_for(run, timeout=300)["state"] == "finished", (run / "log.txt").read_text()
    infos = {r.name: r for r in jobs.list_runs(tmp_path)}
    assert infos[a.name].mode == "original" and infos[b.name].mode == "cumulative"
    assert infos[b.name].violations == 0 and infos[a.name].violations > 0
    assert load_checkpoint(a)[0].cfg.mode == "original" and load_checkpoint(b)[0].cfg.mode == "cumulative"


def test_dead_process_reads_failed_not_running(tmp_path):
    run = create_run(tmp_path, data="sim")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    st = json.loads((run / "status.json").read_text())
    write_json_atomic(run / "status.json", dict(st, state="running", pid=proc.pid))
    assert read_status(run)["state"] == "failed"
    assert "--resume" in read_status(run)["error"]
