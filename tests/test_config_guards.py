"""Values that would break the guarantees are refused everywhere (config, CLI, checkpoint load);
a diverged run stops with one clear line and keeps its best checkpoint; non-finite values count
as violations; every RNG state a run uses is saved for resume."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import cmkt.train.trainer as trainer_mod
from cmkt.runs.checkpoint import load_checkpoint, save_checkpoint
from cmkt.train.config import TrainConfig, build_configs
from cmkt.errors import CheckpointError
from cmkt.analysis.metrics import compute_metrics
from cmkt.model import GainAKT2, ModelConfig
from cmkt.runs import create_run, execute_run, read_status
from cmkt.analysis.scoring import score
from test_model import random_dataset

SMALL = dict(d_model=16, n_heads=2, n_blocks=1, d_ff=16)


@pytest.mark.parametrize("key,value", [
    ("gain_scale", -0.5), ("gain_scale", 0.0), ("gain_scale", math.nan), ("gain_scale", math.inf),
    ("dropout", 1.5), ("dropout", -0.1), ("momentary_bound", -1.0), ("predictor", "psychic"),
    ("accumulation", "sideways"), ("d_model", 0), ("n_heads", 3), ("max_len", 1)])
def test_model_config_refuses_values_that_break_the_model(key, value):
    with pytest.raises(ValueError, match=key.split("_")[0]):
        ModelConfig(num_skills=4, **{key: value})


@pytest.mark.parametrize("key,value", [
    ("lr", "0"), ("lr", "nan"), ("lr", "-1"), ("epochs", "0"), ("batch_size", "0"), ("patience", "0"),
    ("valid_fraction", "1.5"), ("weight_decay", "-1"), ("mastery_loss", "-2"), ("grad_clip", "inf"),
    ("loss_weights", "0.1,0.1,-0.3,0.3,0.1,0.1")])
def test_training_values_are_validated(key, value):
    with pytest.raises(ValueError):
        build_configs(5, "cumulative", "quick", {key: value})


def test_unbounded_momentary_reads_as_none():
    m, _ = build_configs(5, "cumulative", "quick", {"momentary_bound": "inf"})
    assert m.momentary_bound is None
    assert ModelConfig(num_skills=3, momentary_bound="2").momentary_bound == 2.0


def test_cli_refuses_a_negative_gain_scale_before_making_a_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cmkt", "train", "--data", "sim", "--out", str(tmp_path),
                           "--set", "gain_scale=-0.5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "gain_scale" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_with_a_broken_config_is_refused(tmp_path):
    model = GainAKT2(ModelConfig(num_skills=4, **SMALL))
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
    cfg = json.loads(header["model_config"])
    cfg["gain_scale"] = -0.5
    header["model_config"] = json.dumps(cfg)
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(bad), metadata=header)
    with pytest.raises(CheckpointError, match="gain_scale"):
        load_checkpoint(bad)


def test_non_finite_mastery_and_gains_count_as_violations():
    torch.manual_seed(0)
    model = GainAKT2(ModelConfig(num_skills=4, max_len=30, **SMALL))
    traj = score(model, random_dataset(1, 6, 4, max_len=30))
    clean = compute_metrics(traj)
    assert clean["students_with_violation"] == 0 and clean["n_nonfinite"] == 0
    traj.mastery[3, 1] = np.nan
    traj.gains[5, 2] = np.inf
    traj.probs[7] = np.nan
    m = compute_metrics(traj)
    assert m["n_nonfinite"] == 3
    assert m["bounds_violation_rate"] > 0 and m["negative_gain_rate"] > 0
    assert m["monotonicity_violation_rate"] > 0 and m["students_with_violation"] > 0
    assert m["auc"] is None                    # no exception from roc_auc_score on NaN


def test_a_diverged_run_fails_with_one_line_and_keeps_its_best_checkpoint(tmp_path, monkeypatch):
    real = trainer_mod.compute_losses
    calls = {"n": 0, "epoch2": None}

    def poisoned(out, *args, **kw):
        losses = real(out, *args, **kw)
        calls["n"] += 1
        if calls["epoch2"] is not None and calls["n"] >= calls["epoch2"] + 2:
            losses["total"] = losses["total"] * float("nan")
        return losses

    class Mark(trainer_mod.TrainCallbacks):
        def on_epoch(self, rec, is_best):
            if rec["epoch"] == 1:
                calls["epoch2"] = calls["n"]
    monkeypatch.setattr(trainer_mod, "compute_losses", poisoned)
    run = create_run(tmp_path, data="sim:students=40,skills=4", epochs=3,
                     overrides={k: str(v) for k, v in SMALL.items()})
    with pytest.raises(trainer_mod.Diverged):
        execute_run(run, echo=Mark())
    st = read_status(run)
    assert st["state"] == "failed"
    assert st["error"] == "training diverged at epoch 2, batch 2: loss is nan (try a lower lr)"
    model, meta = load_checkpoint(run)            # the best epoch (1) is still there and loads
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_resume_state_holds_every_rng_the_run_uses():
    from cmkt.data.source import load_training_data
    m, t = build_configs(4, "cumulative", "quick", {k: str(v) for k, v in SMALL.items()}, epochs=1)
    data = load_training_data("sim:students=20,skills=4", t.valid_fraction, 0)
    tr = trainer_mod.Trainer(ModelConfig(**{**m.to_dict(), "num_skills": data.num_skills}), t, data)
    state = tr.state_dict()
    assert "torch_rng" in state and "cuda_rng" in state
    if torch.cuda.is_available():
        assert len(state["cuda_rng"]) == torch.cuda.device_count()


def test_train_config_defaults_are_valid():
    TrainConfig()


def test_a_safetensors_header_of_length_128_mod_256_is_not_taken_for_a_pickle(tmp_path):
    """The first byte of a safetensors file is its header length's low byte: 0x80 must not read
    as a pickle's PROTO opcode."""
    model = GainAKT2(ModelConfig(num_skills=4, **SMALL))
    for pad in range(0, 300):
        path = save_checkpoint(model, tmp_path / "m.safetensors", {"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length of 128 mod 256")
    loaded, meta = load_checkpoint(path)
    assert meta["pad"] == "x" * pad
