"""Several training processes (torchrun, gloo on CPU): same weights as one process with the same
global batch, rank 0 alone writes the run folder, cancel and --resume work."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cmkt.runs import torchrun
from cmkt.train import distributed
from cmkt.runs import jobs
from cmkt.runs.checkpoint import load_checkpoint
from cmkt.data.source import load_training_data
from cmkt.analysis.scoring import score

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--model", "cumulative", "--preset", "quick", "--device", "cpu",
        "--set", "d_model=16", "--set", "n_heads=2", "--set", "d_ff=32", "--set", "max_len=20",
        "--set", "dropout=0", "--set", "batch_size=16", "--set", "readout=attention", "--set", "recurrent=8"]
# Attention does not depend on a bias added to every key (softmax is shift-invariant), so these
# get a gradient that is rounding noise, which Adam scales up to a full step: they differ between
# any two runs whose sums are ordered differently, without changing any output.
KEY_BIASES = ("readout.k.bias",)


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_torchrun(*args, nproc=2, **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "cmkt", "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=_env(), timeout=120, **kw)


def one_process(*args):
    cmd = [sys.executable, "-m", "cmkt", "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=_env(), timeout=120)


def weights(run):
    return torch.load(str(run / "resume.pt"), map_location="cpu", weights_only=True)["model"]


def assert_same_weights(a, b, tol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if k.endswith("qk.bias"):                      # [query biases | key biases]
            x, y = x[: len(x) // 2], y[: len(y) // 2]
        elif k in KEY_BIASES:
            continue
        assert torch.allclose(x, y, atol=tol, rtol=0), (k, (x - y).abs().max().item())


def test_two_processes_train_the_same_weights_as_one(tmp_path):
    data = "sim:students=60,skills=5"
    one = one_process("--data", data, *ARGS, "--epochs", 1, "--out", tmp_path / "one", "--name", "r")
    assert one.returncode == 0, one.stderr
    two = run_torchrun("--data", data, *ARGS, "--epochs", 1, "--out", tmp_path / "two", "--name", "r")
    assert two.returncode == 0, two.stderr
    run1, run2 = tmp_path / "one" / "r", tmp_path / "two" / "r"
    assert two.stdout.strip().splitlines()[-1] == str(run2)       # printed once, by rank 0
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["r"]  # one run folder
    assert json.loads((run2 / "status.json").read_text())["state"] == "finished"
    assert_same_weights(weights(run1), weights(run2))
    m1 = json.loads((run1 / "metrics.jsonl").read_text().splitlines()[0])
    m2 = json.loads((run2 / "metrics.jsonl").read_text().splitlines()[0])
    # the whole split, scored once; the validated weights are the moving average (ema), whose
    # float rounding (gradients summed across processes) can swap a near-tie: 1e-5, not exact
    assert m2["val_auc"] == pytest.approx(m1["val_auc"], abs=1e-5)
    assert m2["train_total"] == pytest.approx(m1["train_total"], abs=1e-5)  # the global batch's loss
    # the outputs agree too (the key biases do not change them)
    ds = load_training_data(data, 0.2, 0, 300, 12).valid
    t1, t2 = (score(load_checkpoint(r)[0], ds) for r in (run1, run2))
    assert abs(t1.probs - t2.probs).max() < 1e-5 and abs(t1.mastery - t2.mastery).max() < 1e-5


def test_cancel_then_resume_under_torchrun(tmp_path):
    data = "sim:students=200,skills=5"
    args = ["--data", data, *ARGS, "--epochs", 3, "--out", tmp_path / "two", "--name", "r"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "cmkt", "train", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=_env(),
                            start_new_session=True)
    run = tmp_path / "two" / "r"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().strip():
                break
            time.sleep(0.05)
        st = json.loads((run / "status.json").read_text())
        os.kill(st["pid"], signal.SIGTERM)             # what cancel_run does (rank 0's pid)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    st = json.loads((run / "status.json").read_text())
    if st["state"] == "finished":
        pytest.skip("the run finished before the cancel arrived (machine too fast)")
    assert st["state"] == "cancelled"
    done = len((run / "metrics.jsonl").read_text().splitlines())
    assert 1 <= done < 3                              # whole epochs only
    res = run_torchrun("--resume", run)
    assert res.returncode == 0, res.stderr
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    # the same result as an uninterrupted one-process run of the same seed
    ref = one_process(*args[:-4], "--out", tmp_path / "one", "--name", "r")
    assert ref.returncode == 0, ref.stderr
    assert_same_weights(weights(tmp_path / "one" / "r"), weights(run), tol=1e-4)


def test_train_command_one_process_per_gpu():
    cmd = torchrun.train_command("runs/R", "auto", python="py", gpus=4)
    assert cmd == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4",
                   "-m", "cmkt", "train", "--resume", "runs/R"]
    assert torchrun.train_command("runs/R", "cuda", python="py", gpus=2)[2] == "torch.distributed.run"
    plain = ["py", "-m", "cmkt", "train", "--resume", "runs/R"]
    assert torchrun.train_command("runs/R", "auto", python="py", gpus=1) == plain
    assert torchrun.train_command("runs/R", "auto", python="py", gpus=0) == plain
    assert torchrun.train_command("runs/R", "cpu", python="py", gpus=8) == plain


def test_jobs_launch_uses_torchrun_on_several_gpus(tmp_path, monkeypatch):
    from cmkt.runs import create_run
    run = create_run(tmp_path, data="sim:students=20,skills=3", device="auto", check_data=False)
    monkeypatch.setattr(torchrun, "gpu_count", lambda: 3)
    cmd = jobs.launch_command(run)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"] and "--nproc_per_node=3" in cmd
    monkeypatch.setattr(torchrun, "gpu_count", lambda: 0)
    assert jobs.launch_command(run)[1:4] == ["-m", "cmkt", "train"]


def test_shard_covers_the_batch_once():
    import numpy as np
    idx = np.arange(11)
    parts = [distributed.shard(idx, 3, r) for r in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(11))
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_single_process_is_a_no_op():
    assert distributed.world_size() == 1 and distributed.is_main() and not distributed.active()
    assert distributed.any_flag(True) and not distributed.any_flag(False)
    assert distributed.on_main(lambda: 7) == 7


def test_device_plan_says_where_a_run_trains():
    assert "4 GPUs" in torchrun.device_plan("auto", gpus=4) and "4 processes" in torchrun.device_plan("auto", gpus=4)
    assert "torchrun" in torchrun.device_plan("cuda", gpus=2)
    assert "one process" in torchrun.device_plan("auto", gpus=1) and "GPU" in torchrun.device_plan("auto", gpus=1)
    assert "CPU" in torchrun.device_plan("auto", gpus=0)
    assert "error" in torchrun.device_plan("cuda", gpus=0)
    assert torchrun.device_plan("cpu", gpus=8).startswith("Trains on the CPU in one process")
