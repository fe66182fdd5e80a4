"""Training runs end to end: run folders, best epoch, cancel, kill + resume, CLI."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cmkt.runs import jobs
from cmkt.runs.checkpoint import load_checkpoint
from cmkt.train.config import build_configs
from cmkt.runs import create_run, execute_run, read_metrics, read_status
from cmkt.train.trainer import TrainCallbacks, Trainer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TINY = ["--set", "d_model=16", "--set", "n_heads=2", "--set", "d_ff=32", "--set", "max_len=50"]
TINY_SET = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "50"}
FILES = ("config.json", "status.json", "metrics.jsonl", "best.safetensors", "results.json")


def cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "cmkt", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"cmkt {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def train_cli(tmp_path, data, mode, *extra):
    proc = cli("train", "--data", data, "--model", mode, "--preset", "quick", "--out", tmp_path / "runs", *extra)
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sim_pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pair")
    runs = {m: train_cli(tmp, "sim:students=80,skills=5", m, "--epochs", "2", *TINY) for m in ("original", "cumulative")}
    return tmp, runs


def test_run_folder_is_complete_and_validate_reproduces_results(sim_pair):
    _, runs = sim_pair
    for mode, run in runs.items():
        for f in FILES:
            assert (run / f).exists(), f
        assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))
        status = json.loads((run / "status.json").read_text())
        assert status["state"] == "finished" and status["epoch"] == 2
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["model"]["mode"] == mode and cfg["model"]["num_skills"] == 5
        results = json.loads((run / "results.json").read_text())
        out = json.loads(cli("validate", run, "--data", "sim:students=80,skills=5", "--json").stdout)
        for k, v in results["test"].items():
            assert out[k] == pytest.approx(v, abs=1e-6) if v is not None else out[k] is None, k
        model, meta = load_checkpoint(run)
        assert meta["skill_names"][:2] == ["Counting", "Addition"] and meta["model_config"]["mode"] == mode


def test_cumulative_never_violates_and_original_reports_violations(sim_pair):
    _, runs = sim_pair
    for rec in read_metrics(runs["cumulative"]):
        assert rec["monotonicity_violation_rate"] == 0
        assert rec["negative_gain_rate"] == 0
        assert rec["bounds_violation_rate"] == 0
        assert rec["students_with_violation"] == 0
        assert rec["n_students"] == 16          # the whole validation split, not a sample
    orig = read_metrics(runs["original"])
    assert all(r["students_with_violation"] > 0 for r in orig)
    assert all(r["bounds_violation_rate"] > 0 for r in orig)


def test_compare_prints_both(sim_pair):
    _, runs = sim_pair
    out = cli("compare", runs["original"], runs["cumulative"], "--data", "sim:students=80,skills=5").stdout
    assert runs["original"].name in out and runs["cumulative"].name in out
    assert "monotonicity_violation_rate" in out
    js = json.loads(cli("compare", runs["original"], runs["cumulative"], "--data", "sim:students=80,skills=5",
                        "--json").stdout)
    assert set(js) == {runs["original"].name, runs["cumulative"].name, "differences"}
    assert js[runs["cumulative"].name]["bounds_violation_rate"] == 0


def test_export_writes_one_row_per_step(sim_pair, tmp_path):
    import pandas as pd
    _, runs = sim_pair
    out = tmp_path / "all.csv"
    cli("export", runs["cumulative"], "--data", "sim:students=80,skills=5", "--out", out)
    df = pd.read_csv(out)
    from cmkt.data.sim import simulate
    test = simulate(students=80, skills=5, split="test")
    assert len(df) == test.n_interactions
    for col in ("student_id", "step", "skill_name", "response", "prediction", "mastery", "gain"):
        assert col in df.columns
    one = tmp_path / "one.csv"
    cli("export", runs["cumulative"], "--data", "sim:students=80,skills=5", "--student", "T0003", "--out", one)
    df1 = pd.read_csv(one)
    assert len(df1) == len(test.skills[2]) and set(df1.student_id) == {"T0003"}
    assert (df1.mastery.diff().dropna() >= -1e-6).sum() >= 0   # readable numbers
    bad = cli("export", runs["cumulative"], "--data", "sim:students=80,skills=5", "--student", "nobody",
              "--out", tmp_path / "x.csv", check=False)
    assert bad.returncode == 2 and "nobody" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.skipif(not (SHARED / "synthetic").exists(), reason="shared data not present")
def test_tiny_run_on_real_synthetic_folder(tmp_path):
    run = train_cli(tmp_path, SHARED / "synthetic", "cumulative", "--epochs", "1", *TINY,
                    "--set", "valid_fraction=0.1")
    results = json.loads((run / "results.json").read_text())
    assert results["test"]["n_students"] == 2000 and results["test"]["n_interactions"] == 100_000
    assert results["test"]["auc"] > 0.6
    assert results["test"]["students_with_violation"] == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["num_skills"] == 50 and cfg["data"]["n_train_students"] == 1800


def test_best_epoch_weights_are_the_peak_not_the_last(tmp_path, monkeypatch):
    """Validation AUC peaks at epoch 2 of 4: best.safetensors must hold the weights validated at
    epoch 2 (the moving average of the weights, ema, as the presets now train)."""
    aucs = iter([0.60, 0.80, 0.70, 0.65, 0.5])  # 4 epochs, then the test split
    real_eval = Trainer.evaluate

    def fake_eval(self, model, ds):
        out = real_eval(self, model, ds)
        out["auc"] = next(aucs)
        return out
    monkeypatch.setattr(Trainer, "evaluate", fake_eval)
    snapshots = {}

    class Spy(TrainCallbacks):
        def on_epoch(self, record, is_best):
            snapshots[record["epoch"]] = {k: v.clone() for k, v in spy_trainer[0].eval_model.state_dict().items()}
    spy_trainer = [None]
    real_init = Trainer.__init__

    def init(self, *a, **k):
        real_init(self, *a, **k)
        spy_trainer[0] = self
    monkeypatch.setattr(Trainer, "__init__", init)
    run = create_run(tmp_path, data="sim:students=60,skills=4", preset="quick", epochs=4,
                     overrides=dict(TINY_SET, patience="10"))
    execute_run(run, echo=Spy())
    model, meta = load_checkpoint(run)
    assert meta["epoch"] == 2
    state = model.state_dict()
    assert all(torch.equal(state[k], snapshots[2][k]) for k in state)
    assert not all(torch.equal(state[k], snapshots[4][k]) for k in state)
    assert json.loads((run / "results.json").read_text())["best_epoch"] == 2


def test_training_is_repeatable_on_cpu(tmp_path):
    a = create_run(tmp_path / "a", data="sim:students=50,skills=4", epochs=2, overrides=TINY_SET, seed=3)
    b = create_run(tmp_path / "b", data="sim:students=50,skills=4", epochs=2, overrides=TINY_SET, seed=3)
    ra, rb = execute_run(a), execute_run(b)
    assert ra["valid"]["val_auc"] == pytest.approx(rb["valid"]["val_auc"], abs=1e-9)
    assert ra["valid"]["train_total"] == pytest.approx(rb["valid"]["train_total"], abs=1e-9)


def test_presets_and_overrides():
    m, t = build_configs(10, "cumulative", "correlation_focused", {"lr": "0.01", "wandb": "false", "n_blocks": "3"})
    assert t.weights()[2] == 0.8 and t.lr == 0.01 and m.n_blocks == 3 and t.wandb is False
    m, t = build_configs(10, "original", "quick", {"wandb": "true"}, epochs=2)
    assert t.wandb is True and t.epochs == 2 and m.mode == "original"
    with pytest.raises(ValueError, match="unknown setting 'mastery_hinge'"):     # removed in 0.2
        build_configs(10, "cumulative", "quick", {"mastery_hinge": "gap"})
    with pytest.raises(ValueError, match="unknown setting"):
        build_configs(10, "cumulative", "quick", {"bogus": "1"})
    with pytest.raises(ValueError):
        build_configs(10, "cumulative", "nope")


def _wait(pred, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_cancel_a_background_run(tmp_path):
    run = jobs.start_run(tmp_path, data="sim:students=400,skills=6", epochs=50, overrides=dict(TINY_SET, patience="99"))
    assert _wait(lambda: read_status(run).get("state") == "running" and read_status(run).get("batch"))
    jobs.cancel_run(run, wait=30)
    assert _wait(lambda: read_status(run)["state"] == "cancelled", 30), read_status(run)
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))
    assert not (run / "results.json").exists()
    if (run / "best.safetensors").exists():
        load_checkpoint(run)        # only whole epochs are ever saved
    assert [r.name for r in jobs.list_runs(tmp_path)] == [run.name]


def test_sigkill_reads_failed_and_resume_matches_uninterrupted(tmp_path):
    kw = dict(data="sim:students=300,skills=6", epochs=4, overrides=dict(TINY_SET, patience="99"), seed=1)
    run = jobs.start_run(tmp_path / "k", **kw)
    assert _wait(lambda: (read_status(run).get("epoch") or 0) >= 1 and read_status(run).get("state") == "running")
    os.kill(read_status(run)["pid"], signal.SIGKILL)
    assert _wait(lambda: read_status(run)["state"] == "failed", 20)
    assert read_status(run).get("dead_pid")
    load_checkpoint(run)                      # the last completed epoch's checkpoint loads
    cli("train", "--resume", run)
    assert read_status(run)["state"] == "finished"
    resumed = json.loads((run / "results.json").read_text())
    ref = create_run(tmp_path / "ref", **kw)
    straight = execute_run(ref)
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2, 3, 4]
    assert resumed["best_epoch"] == straight["best_epoch"]
    for k in ("val_auc", "val_loss", "mastery_performance_corr"):
        assert resumed["valid"][k] == pytest.approx(straight["valid"][k], abs=1e-5), k
    assert resumed["test"]["auc"] == pytest.approx(straight["test"]["auc"], abs=1e-5)


@pytest.mark.parametrize("args, needle", [
    (["train", "--data", "/nonexistent/x.csv"], "no such file"),
    (["train", "--data", "sim", "--set", "bogus=1"], "unknown setting"),
    (["train", "--data", "sim", "--set", "lr"], "KEY=VALUE"),
    (["validate", "/nonexistent/run", "--data", "sim"], "no such checkpoint"),
    (["train", "--data", "sim:students=x"], "whole number"),
])
def test_cli_bad_input_exits_2_with_one_line(args, needle, tmp_path):
    proc = cli(*args, "--out", tmp_path, check=False) if args[0] == "train" else cli(*args, check=False)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_validate_refuses_data_with_unknown_skills(sim_pair, tmp_path):
    _, runs = sim_pair
    f = tmp_path / "big.csv"
    f.write_text("3\n1,2,9\n1,0,1\n")
    proc = cli("validate", runs["cumulative"], "--data", f, check=False)
    assert proc.returncode == 2 and "not one the model knows" in proc.stderr and "big.csv" in proc.stderr


def test_help_is_there():
    out = cli("train", "--help").stdout
    for word in ("--preset", "quick", "correlation_focused", "--resume", "--set"):
        assert word in out


@pytest.mark.parametrize("content, needle", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "bad.csv"),
    (b"user_id,skill_id,score\na,1,1\n", "correct"),
    (b"3\n1,2\n1,0\n", "count says 3"),
    (b"2\n1,2\n1,7\n", "not 0 or 1"),
    (b"2\n1,-2\n1,0\n", "invalid"),
])
def test_cli_train_on_bad_data_leaves_nothing_behind(tmp_path, content, needle):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    runs = tmp_path / "runs"
    proc = cli("train", "--data", bad, "--out", runs, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "bad.csv" in proc.stderr and needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not runs.exists() or not any(runs.iterdir())


def test_the_quick_cumulative_model_batches_short_students_by_steps():
    """batch_tokens (the quick cumulative default, 3200): many short students go to one batch, so
    an epoch takes fewer steps, and the average is updated once a step the trainer really takes."""
    import numpy as np
    from cmkt.data.dataset import KTDataset
    from cmkt.data.source import DataSplits
    mc, tc = build_configs(4, "cumulative", "quick", dict(TINY_SET, max_len="100", dropout="0"), epochs=1,
                           device="cpu")
    assert tc.batch_tokens == 3200 and tc.batch_size == 64
    assert build_configs(4, "original", "quick")[1].batch_tokens == 0          # like the seed system
    assert build_configs(4, "cumulative", "standard")[1].batch_tokens == 0
    rng = np.random.default_rng(0)
    lengths = np.r_[rng.integers(2, 12, 600), np.full(64, 100)]

    def ds(lens):
        return KTDataset([rng.integers(0, 4, n) for n in lens], [rng.integers(0, 2, n) for n in lens],
                         [str(i) for i in range(len(lens))], 4, list("1234"), list("abcd"))
    splits = DataSplits("short", ds(lengths), ds([20] * 20), ds([20] * 20), 4, list("1234"), list("abcd"))

    class Count(TrainCallbacks):
        seen = []

        def on_batch(self, epoch, batch, n_batches, loss):
            self.seen.append(n_batches)
    tr = Trainer(mc, tc, splits, Count())
    epoch_seed = tc.seed * 100_003 + 1                                      # what epoch 1 plans with
    per_count = len(tr.train_windows.plan(64, shuffle=True, seed=epoch_seed))
    per_tokens = len(tr.train_windows.plan(64, shuffle=True, seed=epoch_seed, max_tokens=3200))
    assert per_count == 11 and per_tokens < per_count / 2
    tr.train_epoch(1)
    assert Count.seen == [per_tokens] * per_tokens                              # the steps it takes
    assert tr.ema.n_averaged.item() == per_tokens
