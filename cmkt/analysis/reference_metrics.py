"""The reference system's own consistency numbers, computed as its `validate_cumulative_mastery.py`
computes them, for any model (every kind scores into the same Trajectories).

They differ from cmkt's definitions (cmkt.analysis.metrics) on purpose, and are shown beside them,
labelled, so that a researcher coming from the reference finds its headline numbers:

- the reference works on pyKT's *shifted* positions: position j holds the mastery and gains after
  step j and is paired with the *next* response r_{j+1}; a student with T steps has T - 1
  positions, and a student with fewer than 2 positions is not counted;
- at each position it averages mastery and gains over ALL concepts, not only the one practised;
- every rate is computed per student and then averaged over students (cmkt pools all entries);
- its monotonicity test is on that concept-mean, strictly (no tolerance);
- its correlations are Pearson r, per student (3 positions or more), of the concept-mean against the
  next response; a constant series gives NaN, which is dropped; the mean of the rest is reported.

Because the concept-mean mixes in every skill not being answered, its correlation with the next
answer is weak and can be near 0 or negative even where cmkt's per-skill
`mastery_performance_corr` (the mastery of the skill about to be answered against that answer)
is clearly positive. Where nothing can be computed the value is None (JSON null), never NaN
(the script itself writes 0.0 for a correlation with no students). The script checks the first
50 students of a loader; here every student is used. A model that scores long students in windows
that start afresh (an imported pyKT model, Trajectories.starts) is taken window by window, as
pyKT's loader hands the script a long student as several sequences; a cmkt model's chained windows
are one student.
"""
from __future__ import annotations

import numpy as np

from cmkt.analysis.scoring import Trajectories

REFERENCE_KEYS = (
    "monotonicity_violation_rate", "students_with_monotonicity_violations",
    "negative_gain_rate", "students_with_negative_gains",
    "mastery_bounds_violation_rate", "students_with_bounds_violations",
    "mean_mastery_performance_correlation", "positive_mastery_correlations",
    "mean_gain_performance_correlation", "positive_gain_correlations",
    "students_analyzed",
)

REFERENCE_EXPLANATIONS = {
    "monotonicity_violation_rate": "share of a student's positions where the mastery averaged over all "
                                   "concepts falls, averaged over students",
    "negative_gain_rate": "share of a student's (position, concept) gains below 0, averaged over students",
    "mastery_bounds_violation_rate": "share of a student's (position, concept) masteries outside [0, 1], "
                                     "averaged over students",
    "mean_mastery_performance_correlation": "per student: Pearson r of the all-concept mean mastery against "
                                            "the next response; averaged over students (NaN dropped)",
    "mean_gain_performance_correlation": "per student: Pearson r of the all-concept mean gain against the "
                                         "next response; averaged over students (NaN dropped)",
    "students_with_monotonicity_violations": "share of students whose all-concept mean mastery falls at least once",
    "students_with_negative_gains": "share of students with at least one negative gain",
    "students_with_bounds_violations": "share of students with at least one mastery outside [0, 1]",
    "positive_mastery_correlations": "share of those per-student mastery correlations above 0",
    "positive_gain_correlations": "share of those per-student gain correlations above 0",
    "students_analyzed": "students (for a model scored in fresh windows: windows) with at least 2 shifted "
                         "positions (3 steps)",
}

DIFFERENCE_NOTE = (
    "The reference (validate_cumulative_mastery.py) averages mastery and gains over all concepts at "
    "each position, pairs them with the next response and averages per-student rates; cmkt pools "
    "(step, skill) pairs and pairs the mastery of the skill about to be answered with that answer. "
    "So the reference's mastery-performance correlation mixes in every skill not being answered and "
    "can be near 0 or negative where cmkt's per-skill one is positive.")


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def _per_student_pearson(x: np.ndarray, y: np.ndarray, owner: np.ndarray, n_groups: int,
                         count: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Pearson r of x against y within each group (rows sorted by owner), NaN where the group
    is not eligible or either series is constant (np.corrcoef gives NaN there). (G,)"""
    n = np.maximum(count, 1)
    mx = np.bincount(owner, x, n_groups) / n
    my = np.bincount(owner, y, n_groups) / n
    dx, dy = x - mx[owner], y - my[owner]
    sxy = np.bincount(owner, dx * dy, n_groups)
    sxx = np.bincount(owner, dx * dx, n_groups)
    syy = np.bincount(owner, dy * dy, n_groups)
    constant = np.ones(n_groups, dtype=bool)
    if owner.size:
        starts = np.searchsorted(owner, np.arange(n_groups))
        has = count > 0
        st = starts[has]
        constant[has] = ((np.maximum.reduceat(x, st) == np.minimum.reduceat(x, st))
                         | (np.maximum.reduceat(y, st) == np.minimum.reduceat(y, st)))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    bad = ~eligible | constant | ~np.isfinite(r)
    return np.where(bad, np.nan, np.clip(r, -1.0, 1.0))


def sequence_offsets(traj: Trajectories) -> np.ndarray:
    """Row offsets of the sequences the reference sees: one per student, or, for a model that
    scores windows afresh (traj.starts, an imported pyKT model), one per window, as pyKT's
    loader gives a long student as several rows. (Q+1,)"""
    offsets = np.asarray(traj.offsets, dtype=np.int64)
    if traj.starts is None:
        return offsets
    N = int(offsets[-1])
    first = np.zeros(N, dtype=bool)
    lengths = np.diff(offsets)
    first[offsets[:-1][lengths > 0]] = True
    return np.concatenate([np.nonzero(first | traj.starts)[0], [N]]).astype(np.int64)


def reference_metrics(traj: Trajectories) -> dict:
    """The reference's summary numbers (REFERENCE_KEYS) as a JSON-ready dict."""
    offsets = sequence_offsets(traj)
    lengths = np.diff(offsets)
    S = len(lengths)
    n_pos = np.maximum(lengths - 1, 0)                 # shifted positions per sequence
    counted = n_pos >= 2
    owner = np.repeat(np.arange(S), n_pos)             # (P,) sequence of each position
    # position j of a sequence = its row offsets[i] + j, j < T - 1; the next response is row + 1
    starts = np.repeat(offsets[:-1], n_pos)
    within = np.arange(owner.size) - np.repeat(np.cumsum(n_pos) - n_pos, n_pos)
    rows = starts + within                             # (P,)
    m = traj.mastery[rows].astype(np.float64)          # (P, C)
    g = traj.gains[rows].astype(np.float64)            # (P, C)
    perf = traj.responses[rows + 1].astype(np.float64) # (P,)
    C = m.shape[1] if m.ndim == 2 else 0
    mean_m = m.mean(axis=1) if C else np.zeros(len(rows))
    mean_g = g.mean(axis=1) if C else np.zeros(len(rows))

    # monotonicity: positions 1..n-1 of each student where the concept-mean falls (strictly)
    falls = np.zeros(len(rows), dtype=bool)
    if len(rows) > 1:
        falls[1:] = (mean_m[1:] < mean_m[:-1]) & (owner[1:] == owner[:-1])
    n = n_pos.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mono = np.bincount(owner, falls, S) / (n - 1)
        neg = np.bincount(owner, (g < 0).sum(axis=1), S) / (n * C)
        bounds = np.bincount(owner, ((m < 0) | (m > 1)).sum(axis=1), S) / (n * C)
    mono, neg, bounds = mono[counted], neg[counted], bounds[counted]

    eligible = n_pos >= 3
    r_m = _per_student_pearson(mean_m, perf, owner, S, n_pos, eligible)
    r_g = _per_student_pearson(mean_g, perf, owner, S, n_pos, eligible)
    r_m, r_g = r_m[~np.isnan(r_m)], r_g[~np.isnan(r_g)]
    return {
        "monotonicity_violation_rate": _mean(mono),
        "students_with_monotonicity_violations": _mean(mono > 0),
        "negative_gain_rate": _mean(neg),
        "students_with_negative_gains": _mean(neg > 0),
        "mastery_bounds_violation_rate": _mean(bounds),
        "students_with_bounds_violations": _mean(bounds > 0),
        "mean_mastery_performance_correlation": _mean(r_m),
        "positive_mastery_correlations": _mean(r_m > 0),
        "mean_gain_performance_correlation": _mean(r_g),
        "positive_gain_correlations": _mean(r_g > 0),
        "students_analyzed": int(counted.sum()),
    }
