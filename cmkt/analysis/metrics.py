"""The one definition of every metric (DESIGN.md), vectorised over a whole data set."""
from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from cmkt.analysis.scoring import Trajectories

EPS = 1e-6
SATURATED = 0.99

METRIC_EXPLANATIONS = {
    "monotonicity_violation_rate": "share of (step, skill) pairs where mastery fell from the previous step",
    "negative_gain_rate": "share of (step, skill) pairs with a negative learning gain",
    "bounds_violation_rate": "share of (step, skill) pairs with mastery outside [0, 1]",
    "students_with_violation": "share of students with at least one violation of any kind",
    "mastery_performance_corr": "Pearson r: mastery of the skill about to be answered (before the answer) vs correctness",
    "gain_performance_corr": "Pearson r: gain credited to the practised skill vs correctness of that answer",
    "auc": "ROC AUC of the predicted probability of a correct answer (steps 2..T)",
    "accuracy": "share of answers predicted right at threshold 0.5 (steps 2..T)",
    "prediction_performance_corr": "Pearson r: predicted probability vs correctness (what any single score can reach; mastery is measured against it)",
    "mastery_auc": "ROC AUC of the mastery of the skill about to be answered, alone, against correctness (steps 2..T)",
    "mastery_saturation_rate": "share of steps whose practised skill's mastery is at the ceiling (>= 0.99): it says nothing there",
    "mastery_recovery_corr": "simulated data only: Pearson r between model and true mastery of the practised skill",
    "n_nonfinite": "mastery, gain or prediction values that are not finite numbers (each counts as a violation)",
    "n_students": "students scored",
    "n_interactions": "interactions scored",
    "n_predictions": "predictions scored (every step after a student's first)",
}
VIOLATION_KEYS = ("monotonicity_violation_rate", "negative_gain_rate",
                  "bounds_violation_rate", "students_with_violation", "n_nonfinite")


def pearson(x, y) -> float | None:
    """Pearson r, or None when it cannot be computed (fewer than 2 points, constant input)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    r = float(stats.pearsonr(x, y)[0])
    return r if np.isfinite(r) else None


def _rate(count, total) -> float | None:
    return float(count) / float(total) if total else None


def compute_metrics(traj: Trajectories) -> dict:
    """Every metric of DESIGN.md as a plain dict (JSON-ready: floats, ints, None)."""
    S = len(traj.student_ids)
    N, C = traj.mastery.shape
    offsets = traj.offsets
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    first = np.zeros(N, dtype=bool)
    first[offsets[:-1][nonempty]] = True
    if traj.starts is not None:                      # windows scored afresh: their first steps too
        first |= traj.starts
    later = ~first                                   # rows with t >= 2 within their student
    m, g, s, r = traj.mastery, traj.gains, traj.skills, traj.responses
    row_student = np.repeat(np.arange(S), lengths)   # (N,)

    # violations, per (row, skill); the first row of each student has no "previous"
    # a value that is not a finite number (a diverged model) is a violation, never a pass:
    # every comparison with NaN is false, so it is counted explicitly
    bad_m, bad_g = ~np.isfinite(m), ~np.isfinite(g)
    mono = np.zeros((N, C), dtype=bool)
    if N > 1:
        mono[1:] = (m[1:] < m[:-1] - EPS) | bad_m[1:] | bad_m[:-1]
    mono[first] = False
    neg = (g < -EPS) | bad_g
    bounds = (m < -EPS) | (m > 1 + EPS) | bad_m
    row_bad = (mono | neg | bounds).any(axis=1)
    student_bad = np.zeros(S, dtype=bool)
    np.logical_or.at(student_bad, row_student[row_bad], True)

    n_later = int(later.sum())
    out = {
        "monotonicity_violation_rate": _rate(mono.sum(), n_later * C),
        "negative_gain_rate": _rate(neg.sum(), N * C),
        "bounds_violation_rate": _rate(bounds.sum(), N * C),
        "students_with_violation": _rate(student_bad.sum(), int(nonempty.sum())),
    }

    # mastery of s_t before answering (row t-1) vs r_t, t >= 2
    idx = np.nonzero(later)[0]
    out["mastery_performance_corr"] = pearson(m[idx - 1, s[idx]], r[idx])
    out["gain_performance_corr"] = pearson(g[np.arange(N), s], r)

    y, p = r[idx], traj.probs[idx]
    finite_p = bool(np.isfinite(p).all())
    two = len(np.unique(y)) == 2
    out["auc"] = float(roc_auc_score(y, p)) if two and finite_p else None
    out["accuracy"] = float(((p >= 0.5) == (y == 1)).mean()) if len(y) and finite_p else None
    out["prediction_performance_corr"] = pearson(p, y)
    m_before = m[idx - 1, s[idx]]
    out["mastery_auc"] = (float(roc_auc_score(y, m_before))
                          if two and np.isfinite(m_before).all() else None)
    out["mastery_saturation_rate"] = _rate((m[np.arange(N), s] >= SATURATED).sum(), N)
    if traj.true_mastery is not None:
        rows = np.arange(N)
        out["mastery_recovery_corr"] = pearson(m[rows, s], traj.true_mastery[rows, s])
    out["n_students"] = int(S)
    out["n_interactions"] = int(N)
    out["n_predictions"] = n_later
    no_pred = ~np.isfinite(traj.probs) if traj.starts is None else ~np.isfinite(traj.probs) & ~traj.starts
    out["n_nonfinite"] = int(bad_m.sum() + bad_g.sum() + no_pred.sum())
    return out
