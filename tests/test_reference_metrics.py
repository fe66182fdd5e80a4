"""The reference's consistency numbers (validate_cumulative_mastery.py's definitions), by hand on
tiny trajectories, against a literal port of the script's loop, and in `validate --json`."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cmkt.analysis.reference_metrics import REFERENCE_KEYS, reference_metrics
from cmkt.analysis.scoring import Trajectories


def traj_of(students: list[dict]) -> Trajectories:
    """students: dicts with responses (T,), mastery (T, C), gains (T, C)."""
    lengths = [len(s["responses"]) for s in students]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    C = students[0]["mastery"].shape[1]
    cat = lambda k, shape: (np.concatenate([np.asarray(s[k], float).reshape(shape) for s in students])
                            if sum(lengths) else np.zeros((0,) + shape[1:]))
    N = int(offsets[-1])
    return Trajectories([f"s{i}" for i in range(len(students))], offsets, np.zeros(N, np.int64),
                        cat("responses", (-1,)).astype(np.int64), np.full(N, 0.5),
                        cat("mastery", (-1, C)), cat("gains", (-1, C)), "original")


def hand_students() -> list[dict]:
    big = 9.0                                   # the last step's values are never used (no next response)
    a = dict(responses=[1, 0, 1, 1],
             mastery=np.array([[0.2, 0.4], [0.3, 0.1], [0.6, 0.4], [big, big]]),      # means .3 .2 .5
             gains=np.array([[0.1, -0.1], [0.0, 0.2], [-0.5, 0.1], [-big, -big]]))
    b = dict(responses=[1, 1, 1],                # 2 positions: counted in the rates, too short for r
             mastery=np.array([[1.2, 0.5], [0.5, 0.5], [-big, big]]),                 # means .85 .5
             gains=np.zeros((3, 2)))
    c = dict(responses=[1], mastery=np.zeros((1, 2)), gains=-np.ones((1, 2)))   # no position: not counted
    d = dict(responses=[0, 1, 1, 1],             # next responses all 1: r is NaN, dropped
             mastery=np.full((4, 2), 0.5), gains=np.zeros((4, 2)))
    return [a, b, c, d]


def test_hand_computed_numbers():
    out = reference_metrics(traj_of(hand_students()))
    assert set(out) == set(REFERENCE_KEYS)
    assert out["students_analyzed"] == 3                                  # a, b, d
    assert out["monotonicity_violation_rate"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert out["students_with_monotonicity_violations"] == pytest.approx(2 / 3)
    assert out["negative_gain_rate"] == pytest.approx((2 / 6 + 0 + 0) / 3)
    assert out["students_with_negative_gains"] == pytest.approx(1 / 3)
    assert out["mastery_bounds_violation_rate"] == pytest.approx((0 + 1 / 4 + 0) / 3)
    assert out["students_with_bounds_violations"] == pytest.approx(1 / 3)
    # student a: mean mastery (.3, .2, .5) against next responses (0, 1, 1): r = 3 / sqrt(252)
    assert out["mean_mastery_performance_correlation"] == pytest.approx(3 / math.sqrt(252))
    assert out["positive_mastery_correlations"] == 1.0
    # mean gains (0, .1, -.2) against (0, 1, 1)
    x, y = np.array([0.0, 0.1, -0.2]), np.array([0.0, 1, 1])
    r = ((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert out["mean_gain_performance_correlation"] == pytest.approx(r)
    assert out["positive_gain_correlations"] == (1.0 if r > 0 else 0.0)


def test_nothing_computable_is_null_not_nan():
    short = [dict(responses=[1, 0], mastery=np.zeros((2, 3)), gains=np.zeros((2, 3)))]
    out = reference_metrics(traj_of(short))
    assert out["students_analyzed"] == 0
    assert all(out[k] is None for k in REFERENCE_KEYS if k != "students_analyzed")
    flat = [dict(responses=[1, 1, 1, 1], mastery=np.full((4, 3), 0.4), gains=np.zeros((4, 3)))]
    out = reference_metrics(traj_of(flat))
    assert out["students_analyzed"] == 1 and out["monotonicity_violation_rate"] == 0.0
    assert out["mean_mastery_performance_correlation"] is None
    assert out["mean_gain_performance_correlation"] is None
    json.dumps(out, allow_nan=False)


def script_port(traj: Trajectories) -> dict:
    """validate_cumulative_mastery.py's per-student loop, literally (shifted positions, np.corrcoef)."""
    mono, neg, bnd, cm, cg = [], [], [], [], []
    for i in range(len(traj.student_ids)):
        sl = traj.rows(i)
        M, G, R = traj.mastery[sl][:-1], traj.gains[sl][:-1], traj.responses[sl][1:].astype(float)
        n = len(M)
        if n < 2:
            continue
        mm, mg = M.mean(axis=1), G.mean(axis=1)
        mono.append(sum(mm[t] < mm[t - 1] for t in range(1, n)) / (n - 1))
        neg.append(np.sum(G < 0) / G.size)
        bnd.append(np.sum((M < 0) | (M > 1)) / M.size)
        if n >= 3:
            with np.errstate(invalid="ignore", divide="ignore"):
                a, b = np.corrcoef(mm, R)[0, 1], np.corrcoef(mg, R)[0, 1]
            if not np.isnan(a):
                cm.append(a)
            if not np.isnan(b):
                cg.append(b)
    return {"monotonicity_violation_rate": np.mean(mono), "negative_gain_rate": np.mean(neg),
            "mastery_bounds_violation_rate": np.mean(bnd), "mean_mastery_performance_correlation": np.mean(cm),
            "mean_gain_performance_correlation": np.mean(cg), "students_analyzed": len(mono)}


def test_matches_a_literal_port_of_the_script():
    rng = np.random.default_rng(3)
    students = []
    for _ in range(40):
        T = int(rng.integers(1, 30))
        resp = rng.integers(0, 2, T)
        if rng.random() < 0.2:
            resp[:] = 1                                     # constant responses: NaN correlation
        students.append(dict(responses=resp, mastery=rng.uniform(-0.1, 1.1, (T, 5)),
                             gains=rng.normal(0.02, 0.05, (T, 5))))
    traj = traj_of(students)
    ours, theirs = reference_metrics(traj), script_port(traj)
    for k, v in theirs.items():
        assert ours[k] == pytest.approx(float(v), abs=1e-12), k


def test_validate_json_carries_the_reference_object(tmp_path, capsys):
    from cmkt.cli import main
    from cmkt.runs import create_run, execute_run
    run = create_run(tmp_path, data="sim:students=40,skills=4", epochs=1, name="tiny",
                     overrides={"d_model": "16", "n_heads": "2", "d_ff": "16"})
    execute_run(run)
    capsys.readouterr()
    assert main(["validate", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ref = out["reference"]
    assert set(ref) == set(REFERENCE_KEYS)
    assert ref["students_analyzed"] > 0
    # a cumulative model: gains >= 0 and mastery never falls, in the reference's terms too
    assert ref["negative_gain_rate"] == 0.0 and ref["monotonicity_violation_rate"] == 0.0
    assert out["mastery_performance_corr"] is not None           # cmkt's own numbers stay beside it


def test_windows_scored_afresh_are_sequences_of_their_own():
    """An imported pyKT model (Trajectories.starts) is taken window by window, as pyKT's loader
    hands a long student to the script as several sequences."""
    a, _, _, d = hand_students()
    whole = dict(responses=list(a["responses"]) + list(d["responses"]),
                 mastery=np.vstack([a["mastery"], d["mastery"]]), gains=np.vstack([a["gains"], d["gains"]]))
    t = traj_of([whole])
    t.starts = np.zeros(8, bool)
    t.starts[[0, 4]] = True                                       # two windows of 4 steps
    assert reference_metrics(t) == reference_metrics(traj_of([a, d]))
    assert reference_metrics(traj_of([whole]))["students_analyzed"] == 1
