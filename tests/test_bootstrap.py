"""Differences with confidence intervals: the paired bootstrap over students of B - A."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cmkt.analysis.bootstrap import _AucPlan, compare_trajectories, pair_steps
from cmkt.analysis.scoring import Trajectories


def synthetic(noise: float, students: int = 300, skills: int = 6, seed: int = 0, data_seed: int = 7) -> Trajectories:
    """Students with fixed answers (data_seed); predictions and mastery = the answer blurred by noise."""
    d = np.random.default_rng(data_seed)
    lengths = d.integers(2, 30, students)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    N = int(offsets[-1])
    skills_ = d.integers(0, skills, N)
    y = (d.random(N) < 0.6).astype(np.int64)
    rng = np.random.default_rng(seed)
    probs = 1 / (1 + np.exp(-((y - 0.5) * 2 + rng.normal(0, noise, N))))
    # mastery of the skill about to be answered (row t-1) carries the next answer
    mastery = rng.random((N, skills))
    nxt = np.r_[y[1:], 0]
    mastery[np.arange(N), np.r_[skills_[1:], 0]] = 1 / (1 + np.exp(-((nxt - 0.5) * 2 + rng.normal(0, noise, N))))
    return Trajectories([f"u{i}" for i in range(students)], offsets, skills_, y, probs.astype(np.float32),
                        mastery.astype(np.float32), np.zeros_like(mastery, np.float32), "original")


def test_weighted_auc_equals_sklearn_and_handles_ties():
    rng = np.random.default_rng(1)
    N, S = 500, 40
    student = np.sort(rng.integers(0, S, N))
    y = rng.integers(0, 2, N)
    score = np.round(rng.random(N) + 0.3 * y, 1)                   # many ties, mixed classes
    plan = _AucPlan(score, y, student, S)
    ones = np.ones((S, 1), np.float32)
    assert plan.auc(ones)[0] == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    # a weighting = students repeated: equal to sklearn on the repeated steps
    w = rng.integers(0, 3, S)
    rep = np.repeat(np.arange(N), w[student])
    assert plan.auc(w[:, None].astype(np.float32))[0] == pytest.approx(roc_auc_score(y[rep], score[rep]), abs=1e-12)


def test_same_model_twice_is_a_tie_around_zero():
    t = synthetic(1.0)
    out = compare_trajectories(t, synthetic(1.0), rounds=1000)
    for m in ("auc", "mastery_auc"):
        r = out[m]
        assert r["diff"] == 0 and r["low"] <= 0 <= r["high"] and r["verdict"] == "tie"
        assert r["rounds"] == 1000 and r["level"] == 0.95 and r["n_students"] == 300


def test_clearly_better_model_is_ahead_with_the_right_sign():
    worse, better = synthetic(3.0, seed=1), synthetic(0.5, seed=2)
    out = compare_trajectories(worse, better, rounds=1000)
    for m in ("auc", "mastery_auc"):
        r = out[m]
        assert r["diff"] > 0 and 0 < r["low"] <= r["diff"] <= r["high"] and r["verdict"] == "B ahead"
        assert r["a"] == pytest.approx(roc_auc_score(*_pooled(worse, m)))
    back = compare_trajectories(better, worse, rounds=1000)
    assert back["auc"]["verdict"] == "A ahead" and back["auc"]["high"] < 0


def _pooled(t: Trajectories, metric: str):
    st = pair_steps(t, t)
    return st.y, st.scores_a[metric]


def test_close_models_give_a_tie_and_the_seed_reproduces_it():
    a, b = synthetic(1.0, seed=1), synthetic(1.0, seed=2)        # same quality, different noise
    one = compare_trajectories(a, b, rounds=1000, seed=5)
    assert one["auc"]["low"] < one["auc"]["diff"] < one["auc"]["high"]
    assert one == compare_trajectories(a, b, rounds=1000, seed=5)
    other = compare_trajectories(a, b, rounds=1000, seed=6)
    assert other["auc"]["low"] != one["auc"]["low"]


def test_students_are_matched_by_id_and_answers():
    a = synthetic(1.0)
    rev = list(range(len(a.student_ids)))[::-1]                      # B lists the students backwards
    lengths = np.diff(a.offsets)[rev]
    rows = np.concatenate([np.arange(a.offsets[i], a.offsets[i + 1]) for i in rev])
    b = Trajectories([a.student_ids[i] for i in rev], np.concatenate([[0], np.cumsum(lengths)]),
                     a.skills[rows], a.responses[rows], a.probs[rows], a.mastery[rows], a.gains[rows], "original")
    out = compare_trajectories(a, b, rounds=1000)
    assert out["auc"]["diff"] == pytest.approx(0, abs=1e-12) and out["auc"]["verdict"] == "tie"
    other = Trajectories([f"x{i}" for i in range(len(a.student_ids))], a.offsets, a.skills, a.responses,
                         a.probs, a.mastery, a.gains, "original")
    from cmkt.errors import CmktError
    with pytest.raises(CmktError, match="share no student"):
        compare_trajectories(a, other)


def test_assist_sized_set_is_fast():
    import time
    t0 = synthetic(1.0, students=4000, skills=50, seed=1, data_seed=3)
    t1 = synthetic(1.0, students=4000, skills=50, seed=2, data_seed=3)
    start = time.perf_counter()
    compare_trajectories(t0, t1, rounds=1000)
    assert time.perf_counter() - start < 30          # a few seconds; generous on a busy shared CPU


def test_cli_compare_prints_the_interval_and_tie_for_two_copies(tmp_path, capsys):
    import shutil
    from cmkt.cli import main
    from cmkt.runs import create_run, execute_run
    run = create_run(tmp_path, data="sim:students=40,skills=4", epochs=1, name="one",
                     overrides={"d_model": "16", "n_heads": "2", "d_ff": "16"})
    execute_run(run)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    capsys.readouterr()
    data = "sim:students=40,skills=4"
    assert main(["compare", str(run), str(copy), "--data", data]) == 0
    text = capsys.readouterr().out
    assert "paired bootstrap" in text and "copy - one" in text
    assert "[+0.0000, +0.0000]" in text and text.count(" tie") >= 2
    assert main(["compare", str(run), str(copy), "--data", data, "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert "auc" in js["one"] and "auc" in js["copy"]                  # the per-run columns stay
    d = js["differences"][0]
    assert d["a"] == "one" and d["b"] == "copy"
    assert d["auc"]["low"] <= 0 <= d["auc"]["high"] and d["auc"]["verdict"] == "tie" and d["auc"]["ahead"] is None
    assert main(["compare", str(run), str(copy), "--data", data, "--rounds", "10"]) == 2


def test_benchmark_script_smoke_runs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "evidence.py"
    out = tmp_path / "e.json"
    subprocess.run([sys.executable, str(script), "--quick", "--students", "60", "--out", str(out)],
                   check=True, capture_output=True, timeout=120)
    res = json.loads(out.read_text())["bootstrap"]
    assert res["n_students"] == 60 and res["rounds"] == 1000 and res["auc"]["low"] <= res["auc"]["high"]


def test_windows_scored_afresh_are_left_out_for_both_models():
    """A model that scores windows afresh (an imported pyKT model) has no prediction at a window's
    first step (NaN): those steps are left out of both sides, as the metrics leave them out."""
    a = synthetic(1.0, seed=1)
    b = synthetic(1.0, seed=2)
    starts = np.zeros(len(b.probs), bool)
    starts[b.offsets[:-1]] = True
    starts[b.offsets[:-1][np.diff(b.offsets) > 10] + 10] = True     # long students: a second window
    b.starts = starts
    b.probs = np.where(starts, np.nan, b.probs).astype(np.float32)
    out = compare_trajectories(a, b, rounds=1000)
    n_left = int(starts.sum() - len(b.student_ids))
    assert out["auc"]["n_steps"] == len(a.probs) - len(a.student_ids) - n_left
    assert out["auc"]["low"] is not None and np.isfinite(out["auc"]["diff"])
