"""The GPU path: bfloat16 autocast (amp), --device auto falling back to the CPU, CUDA RNG state
in the resume state. The CUDA-only checks run only where there is a GPU."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cmkt.train import accel
from cmkt.train.config import build_configs
from cmkt.data.source import load_training_data
from cmkt.analysis.metrics import compute_metrics
from cmkt.analysis.scoring import score
from cmkt.train.trainer import Trainer, pick_device

REPO = Path(__file__).resolve().parents[1]
TINY = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "20", "dropout": "0"}
GUARANTEES = ("monotonicity_violation_rate", "negative_gain_rate", "bounds_violation_rate")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_amp_dtype(monkeypatch):
    assert accel.amp_dtype(torch.device("cuda"), "auto") is torch.bfloat16
    assert accel.amp_dtype(torch.device("cuda"), "off") is None
    assert accel.amp_dtype(torch.device("cpu"), "bf16") is torch.bfloat16
    # auto on the CPU: bfloat16 only with native bfloat16 arithmetic and a model 128 wide or more
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: True)
    assert accel.amp_dtype(torch.device("cpu"), "auto", 128) is torch.bfloat16
    assert accel.amp_dtype(torch.device("cpu"), "auto", 64) is None           # the quick model: no gain
    assert accel.amp_dtype(torch.device("cpu"), "auto") is None               # no width (DKT): float32
    assert accel.amp_dtype(torch.device("cpu"), "off", 128) is None
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: False)
    assert accel.amp_dtype(torch.device("cpu"), "auto", 256) is None


def test_cpu_capability_probe_is_a_bool():
    assert isinstance(accel.cpu_has_native_bf16(), bool)


def test_auto_trains_the_standard_width_in_bf16_on_a_bf16_cpu(monkeypatch, tmp_path):
    """What a run says it trained in follows amp: status.json and results.json name the precision."""
    from cmkt.runs import create_run, execute_run
    import json
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: True)
    sets = {"d_model": "128", "n_heads": "2", "d_ff": "32", "max_len": "20", "n_blocks": "1"}
    run = create_run(tmp_path, data="sim:students=30,skills=4", mode="cumulative", preset="quick",
                     epochs=1, overrides=sets, seed=0, device="cpu")
    res = execute_run(run)
    assert res["precision"] == "bfloat16 autocast"
    assert json.loads((Path(run) / "status.json").read_text())["precision"] == "bfloat16 autocast"
    for k in GUARANTEES:
        assert res["test"][k] == 0, k
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: False)
    run = create_run(tmp_path, data="sim:students=30,skills=4", mode="cumulative", preset="quick",
                     epochs=1, overrides=sets, seed=0, device="cpu")
    assert execute_run(run)["precision"] == "float32"


def test_attention_stays_float32_under_cpu_autocast():
    """The CPU flash-attention backward is ~3x slower in bfloat16, so causal_attention computes in
    float32 inside CPU autocast: the same numbers as outside it."""
    from cmkt.model.gainakt2 import causal_attention
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 7, 8, generator=g) for _ in range(3))
    plain = causal_attention(q, k, v, 0.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = causal_attention(q, k, v, 0.0)
    assert inside.dtype == torch.float32
    assert torch.equal(inside, plain)


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
