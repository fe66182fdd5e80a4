"""The GPU path: bfloat16 autocast (amp), --device auto falling back to the CPU, CUDA RNG state
in the resume state. The CUDA-only checks run only where there is a GPU."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cmkt import accel
from cmkt.config import build_configs
from cmkt.datasource import load_training_data
from cmkt.metrics import compute_metrics
from cmkt.scoring import score
from cmkt.trainer import Trainer, pick_device

REPO = Path(__file__).resolve().parents[1]
TINY = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "20", "dropout": "0"}
GUARANTEES = ("monotonicity_violation_rate", "negative_gain_rate", "bounds_violation_rate")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_amp_dtype():
    assert accel.amp_dtype(torch.device("cpu"), "auto") is None
    assert accel.amp_dtype(torch.device("cuda"), "auto") is torch.bfloat16
    assert accel.amp_dtype(torch.device("cuda"), "off") is None
    assert accel.amp_dtype(torch.device("cpu"), "bf16") is torch.bfloat16


def _train(amp, device="cpu", epochs=1):
    data = load_training_data("sim:students=60,skills=5", 0.2, 0)
    mc, tc = build_configs(data.num_skills, "cumulative", "quick", dict(TINY, amp=amp), epochs=epochs,
                           device=device)
    tr = Trainer(mc, tc, data)
    tr.fit()
    return tr, data


def test_bf16_autocast_trains_and_keeps_the_guarantees():
    t16, data = _train("bf16")
    t32, _ = _train("off")
    w16, w32 = t16.model.state_dict(), t32.model.state_dict()
    assert any(not torch.equal(w16[k], w32[k]) for k in w16)       # autocast was really on
    assert all(torch.allclose(w16[k], w32[k], atol=0.05) for k in w16)
    m = compute_metrics(score(t16.model, data.valid))             # scoring is float32
    for k in GUARANTEES:
        assert m[k] == 0, k
    assert t16.history[0]["val_auc"] is not None


def test_amp_is_checked_before_a_run_exists(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cmkt", "train", "--data", "sim:students=20,skills=3",
                           "--set", "amp=fp8", "--out", tmp_path], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "amp must be one of auto, bf16, off" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_device_auto_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu"
    tr, _ = _train("auto", device="auto")
    assert tr.device.type == "cpu"
    assert tr.state_dict()["cuda_rng"] == []                       # nothing to save without CUDA


@cuda
def test_cuda_bf16_run_keeps_the_guarantees_and_saves_the_cuda_rng():
    tr, data = _train("auto", device="cuda", epochs=2)
    assert tr.device.type == "cuda"
    state = tr.state_dict()
    assert len(state["cuda_rng"]) == torch.cuda.device_count()
    m = compute_metrics(score(tr.model, data.valid, tr.device))
    for k in GUARANTEES:
        assert m[k] == 0, k
