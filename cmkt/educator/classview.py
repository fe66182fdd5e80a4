"""The class at a glance: per skill, how the students who practised it stand at the end, and
which of them are below a mastery threshold (default: below "developing", i.e. "not yet"),
judged on mastery as shown (two decimals), like the levels.

"Needs attention" order: the largest share of students below the threshold first, then the
lowest mean final mastery.

Everything here is vectorised over students and skills (no Python loop over either), so a class
of 100,000 students and 100 skills takes about a second: the counts are one np.bincount over
student * C + skill, the per-skill figures column reductions of the (students, skills) matrices."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cmkt.educator.practice import DEVELOPING, LEVELS, SECURE, as_shown, level, skill_name
from cmkt.analysis.scoring import Trajectories


def class_matrices(traj: Trajectories) -> dict:
    """Per student (rows) and skill (columns): final mastery (float64, NaN for a student with no
    step), attempts and correct answers (int32)."""
    S, C = len(traj.student_ids), traj.num_skills
    offsets = np.asarray(traj.offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    final = np.full((S, C), np.nan)
    ok = lengths > 0
    final[ok] = traj.mastery[offsets[1:][ok] - 1]
    # one flat cell index per step: student * C + skill; counted with bincount (np.add.at is slow)
    cell = np.repeat(np.arange(S, dtype=np.int64) * C, lengths)
    cell += np.asarray(traj.skills, dtype=np.int64)
    attempts = np.bincount(cell, minlength=S * C).astype(np.int32).reshape(S, C)
    resp = np.asarray(traj.responses)
    if resp.dtype == bool or (resp.size and resp.min() >= 0 and resp.max() <= 1):
        correct = np.bincount(cell[resp.astype(bool)], minlength=S * C)
    else:                                     # not 0/1: sum the values, as np.add.at did
        correct = np.rint(np.bincount(cell, weights=resp.astype(np.float64), minlength=S * C))
    correct = correct.astype(np.int32).reshape(S, C)
    return {"final": final, "attempts": attempts, "correct": correct}


def levels_of(values) -> np.ndarray:
    """level() of many mastery values at once (an object array of words, "—" where not finite)."""
    v = as_shown(np.asarray(values, dtype=np.float64))
    out = np.where(v < DEVELOPING, LEVELS[0], np.where(v < SECURE, LEVELS[1], LEVELS[2])).astype(object)
    out[~np.isfinite(v)] = "—"
    return out


def _practised_sums(cm: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(who practised each skill (S, C) bool, their number per skill, the sum of their final mastery)."""
    who = cm["attempts"] > 0
    n = who.sum(axis=0)
    total = np.where(who, cm["final"], 0.0).sum(axis=0)
    return who, n, total


def skills_table(traj: Trajectories, names, labels, threshold: float = DEVELOPING,
                 cm: dict | None = None) -> pd.DataFrame:
    """One row per skill someone practised, "needs attention" first: students who practised it,
    their mean final mastery (and its level), the share of them below `threshold`, attempts
    and accuracy over all attempts. `cm`: class_matrices(traj), when already at hand."""
    cm = cm or class_matrices(traj)
    att, fin = cm["attempts"], cm["final"]
    who, n, total = _practised_sums(cm)
    with np.errstate(invalid="ignore"):
        low = (who & (as_shown(fin) < threshold)).sum(axis=0)
    tot_att = att.sum(axis=0, dtype=np.int64)
    tot_cor = cm["correct"].sum(axis=0, dtype=np.int64)
    ks = np.nonzero(tot_att > 0)[0]
    n_k = n[ks]
    mean = total[ks] / n_k
    cols = ["skill", "skill_index", "students", "mean mastery", "level", "share below", "below",
            "attempts", "accuracy"]
    df = pd.DataFrame({
        "skill": [skill_name(k, names, labels) for k in ks], "skill_index": ks.astype(int),
        "students": n_k.astype(int), "mean mastery": mean.astype(float), "level": [level(m) for m in mean],
        "share below": (low[ks] / n_k).astype(float), "below": low[ks].astype(int),
        "attempts": tot_att[ks].astype(int), "accuracy": (tot_cor[ks] / tot_att[ks]).astype(float)},
        columns=cols)
    return df.sort_values(["share below", "mean mastery", "skill_index"], ascending=[False, True, True],
                          ignore_index=True)


def students_below(traj: Trajectories, skill: int, threshold: float = DEVELOPING,
                   cm: dict | None = None) -> pd.DataFrame:
    """The students who practised `skill` and end below `threshold` on it, weakest first."""
    cm = cm or class_matrices(traj)
    att = cm["attempts"][:, skill]
    fin = cm["final"][:, skill]
    with np.errstate(invalid="ignore"):
        rows = np.nonzero((att > 0) & (as_shown(fin) < threshold))[0]
    rows = rows[np.argsort(fin[rows], kind="stable")]
    ids = np.asarray(traj.student_ids, dtype=object)
    return pd.DataFrame({
        "student": [str(s) for s in ids[rows]],
        "final mastery": fin[rows].astype(float),
        "level": levels_of(fin[rows]),
        "attempts": att[rows].astype(int),
        "correct": cm["correct"][rows, skill].astype(int),
        "accuracy": (cm["correct"][rows, skill] / np.maximum(att[rows], 1)).astype(float),
    })


def student_order(cm: dict) -> np.ndarray:
    """Students from the weakest to the strongest by their mean final mastery over the skills
    they practised (a student with no step last). A stable order."""
    who = cm["attempts"] > 0
    n = who.sum(axis=1)
    total = np.where(who, cm["final"], 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return np.argsort(score, kind="stable")


def even_sample(order: np.ndarray, n: int) -> np.ndarray:
    """n entries spread evenly over `order` (its first and last included); all of it when n >= len."""
    if n >= len(order):
        return order
    return order[np.linspace(0, len(order) - 1, n).round().astype(int)]


def skill_spread(cm: dict) -> np.ndarray:
    """Per skill: the standard deviation (ddof 0) of final mastery over the students who
    practised it; NaN where nobody did."""
    who, n, total = _practised_sums(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        dev = np.where(who, cm["final"] - mean, 0.0)
        return np.sqrt((dev * dev).sum(axis=0) / n)


def _lerp(a, b, t):
    """numpy's linear interpolation for quantiles (the same rounding as np.percentile)."""
    d = b - a
    out = a + d * t
    return np.where(t >= 0.5, b - d * (1 - t), out)


def skill_quartiles(cm: dict, only_practised: bool = True) -> pd.DataFrame:
    """Per skill (one row per skill index, all of them): the box-plot figures of final mastery
    over the students who practised it (or over every student with a step): n, mean, q1, median,
    q3 and the whisker ends (the most extreme values within 1.5 IQR of the quartiles). NaN where
    n == 0. Computed for all skills at once: one sort of the (skills, students) matrix."""
    fin = cm["final"]
    keep = (cm["attempts"] > 0) if only_practised else np.isfinite(fin)
    vals = np.ascontiguousarray(np.where(keep & np.isfinite(fin), fin, np.nan).T)   # (C, S), NaN: not counted
    vals.sort(axis=1)                                            # NaN last
    n = np.isfinite(vals).sum(axis=1)
    C = vals.shape[0]
    rows = np.arange(C)
    top = np.maximum(n - 1, 0)
    out = {"n": n}

    def q(p):
        pos = top * p
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, top)
        return _lerp(vals[rows, lo], vals[rows, hi], pos - lo)

    q1, med, q3 = q(0.25), q(0.5), q(0.75)
    iqr = q3 - q1
    with np.errstate(invalid="ignore"):
        lo_i = np.minimum((vals < (q1 - 1.5 * iqr)[:, None]).sum(axis=1), top)     # first value >= fence
        hi_i = np.maximum((vals <= (q3 + 1.5 * iqr)[:, None]).sum(axis=1) - 1, 0)  # last value <= fence
        mean = np.where(n > 0, np.nansum(vals, axis=1) / np.maximum(n, 1), np.nan)
    out.update(mean=mean, q1=q1, median=med, q3=q3, lowerfence=vals[rows, lo_i], upperfence=vals[rows, hi_i])
    df = pd.DataFrame(out)
    df.loc[n == 0, ["mean", "q1", "median", "q3", "lowerfence", "upperfence"]] = np.nan
    return df
