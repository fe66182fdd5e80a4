"""Is a difference real? The paired bootstrap over students of B - A, for AUC and mastery AUC.

Both models are scored on the same students and steps (steps 2..T of each student, as in
cmkt.analysis.metrics; where a model scores windows afresh, as an imported pyKT model does, the
first step of each window has no prediction and is left out for both). One bootstrap round draws S students with replacement; a student drawn k
times weighs k. The same draw is used for A and B (paired), so what varies between rounds is
which students are in the sample, not which model saw which data.

Vectorised: a round's AUC is a weighted Mann-Whitney statistic. The steps are sorted once per
score into groups of equal scores; per round, the weight of the positive and of the negative
answers in each group is a (sparse group x student) @ (student x rounds) product, and the AUC
follows from a cumulative sum over the groups (ties count one half, as in sklearn). Rounds go in
chunks, so memory stays bounded (about 8 * groups * chunk bytes per array).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.metrics import roc_auc_score

from cmkt.analysis.scoring import Trajectories
from cmkt.errors import CmktError

ROUNDS = 1000
LEVEL = 0.95
SEED = 0
CHUNK = 32
METRICS = ("auc", "mastery_auc")


@dataclass
class PairedSteps:
    """The scored steps two models share: per step its student (0..S-1), the answer and each model's
    prediction and mastery of the skill about to be answered (before the answer)."""

    student: np.ndarray      # (N,) int
    y: np.ndarray            # (N,) 0/1
    scores_a: dict           # metric -> (N,)
    scores_b: dict
    n_students: int


def _rows(traj: Trajectories, students: np.ndarray) -> np.ndarray:
    """Rows t >= 2 of the given students, in that order."""
    n = np.maximum(np.diff(traj.offsets)[students] - 1, 0)
    return np.repeat(traj.offsets[students] + 1, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)


def _scores(traj: Trajectories, rows: np.ndarray) -> dict:
    s = traj.skills[rows]
    return {"auc": traj.probs[rows].astype(np.float64),
            "mastery_auc": traj.mastery[rows - 1, s].astype(np.float64)}


def _unscored(traj: Trajectories, rows: np.ndarray) -> np.ndarray:
    """Rows the metrics leave out beyond t = 1: a window scored afresh starts without a prediction."""
    return np.zeros(len(rows), bool) if traj.starts is None else traj.starts[rows]


def pair_steps(a: Trajectories, b: Trajectories) -> PairedSteps:
    """The students both were scored on with the same answers (matched by id), step by step.
    Refused when there is no such student."""
    where_b = {sid: i for i, sid in enumerate(b.student_ids)}
    ia, ib = [], []
    for i, sid in enumerate(a.student_ids):
        j = where_b.get(sid)
        if j is not None and np.array_equal(a.responses[a.rows(i)], b.responses[b.rows(j)]):
            ia.append(i)
            ib.append(j)
    if not ia:
        raise CmktError("the two models share no student with the same answers: "
                        "score them on the same data")
    ia, ib = np.asarray(ia, np.int64), np.asarray(ib, np.int64)
    rows_a, rows_b = _rows(a, ia), _rows(b, ib)                  # step for step the same answers
    n = np.maximum(np.diff(a.offsets)[ia] - 1, 0)
    student = np.repeat(np.arange(len(ia)), n)
    keep = ~(_unscored(a, rows_a) | _unscored(b, rows_b))       # steps both models score
    rows_a, rows_b, student = rows_a[keep], rows_b[keep], student[keep]
    return PairedSteps(student, a.responses[rows_a].astype(np.int8), _scores(a, rows_a), _scores(b, rows_b),
                       len(ia))


class _AucPlan:
    """One score's steps in blocks of ascending score: the sparse (block x student) counts of
    positive and negative answers, from which the AUC of any student weighting follows.

    Equal scores share a block (a tie counts one half). Neighbouring blocks holding answers of
    one class only are merged: nothing of the other class lies between them, so the AUC is
    unchanged and the per-round work (about one pass over the blocks) shrinks."""

    def __init__(self, score: np.ndarray, y: np.ndarray, student: np.ndarray, S: int):
        _, group = np.unique(score, return_inverse=True)            # ascending score
        group = group.ravel()
        pos = y == 1
        G = int(group.max()) + 1 if group.size else 0
        gp = np.bincount(group[pos], minlength=G)
        gn = np.bincount(group[~pos], minlength=G)
        cls = np.where(gn == 0, 1, np.where(gp == 0, 0, 2))          # pure positive, pure negative, mixed
        new = np.ones(G, bool)
        new[1:] = (cls[1:] != cls[:-1]) | (cls[1:] == 2)
        block = (np.cumsum(new) - 1)[group]
        B = int(new.sum())
        ones = np.ones(len(y), np.float32)
        self.pos = sparse.csr_matrix((ones[pos], (block[pos], student[pos])), shape=(B, S))
        self.neg = sparse.csr_matrix((ones[~pos], (block[~pos], student[~pos])), shape=(B, S))
        self.npos = np.bincount(student[pos], minlength=S).astype(np.float64)   # (S,)
        self.nneg = np.bincount(student[~pos], minlength=S).astype(np.float64)

    def auc(self, w: np.ndarray) -> np.ndarray:
        """w: (S, R) float32 student weights (whole numbers) -> (R,) AUC, NaN where one class has
        no weight. Counts stay whole numbers below 2**24, exact in float32; the final sum is float64."""
        gp = self.pos @ w                                   # (B, R) positive weight per block
        gn = self.neg @ w                                   # (B, R)
        below = np.cumsum(gn, axis=0)
        below -= 0.5 * gn                                   # negatives strictly below + half the ties
        below *= gp
        num = below.sum(axis=0, dtype=np.float64)
        w64 = w.astype(np.float64)
        den = (self.npos @ w64) * (self.nneg @ w64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan)


def _auc(y, p) -> float | None:
    if len(np.unique(y)) < 2 or not np.isfinite(p).all():
        return None
    return float(roc_auc_score(y, p))


def paired_bootstrap(steps: PairedSteps, rounds: int = ROUNDS, level: float = LEVEL, seed: int = SEED,
                     chunk: int = CHUNK) -> dict:
    """{metric: {a, b, diff, low, high, verdict, ...}} for B - A, with a percentile interval at
    `level` over `rounds` paired resamples of students. verdict: 'tie' when the interval holds 0,
    else 'B ahead' / 'A ahead'; None values where the metric cannot be computed."""
    if rounds < 1:
        raise CmktError(f"bootstrap rounds {rounds}: needs at least 1")
    S = steps.n_students
    rng = np.random.default_rng(seed)
    out, plans = {}, {}
    for m in METRICS:
        a, b = _auc(steps.y, steps.scores_a[m]), _auc(steps.y, steps.scores_b[m])
        out[m] = {"a": a, "b": b, "diff": None if a is None or b is None else b - a,
                  "low": None, "high": None, "verdict": None}
        if out[m]["diff"] is not None:
            plans[m] = (_AucPlan(steps.scores_a[m], steps.y, steps.student, S),
                        _AucPlan(steps.scores_b[m], steps.y, steps.student, S))
    diffs = {m: [] for m in plans}
    if plans:
        p = np.full(S, 1.0 / S)
        for lo in range(0, rounds, chunk):
            r = min(chunk, rounds - lo)
            w = rng.multinomial(S, p, size=r).T.astype(np.float32)      # (S, r): times each student is drawn
            for m, (pa, pb) in plans.items():
                diffs[m].append(pb.auc(w) - pa.auc(w))
    tail = (1 - level) / 2
    for m, parts in diffs.items():
        d = np.concatenate(parts)
        d = d[np.isfinite(d)]
        if not d.size:
            continue
        low, high = (float(x) for x in np.quantile(d, [tail, 1 - tail]))
        out[m].update(low=low, high=high, verdict="tie" if low <= 0 <= high else
                      ("B ahead" if low > 0 else "A ahead"))
    for m in out:
        out[m].update(level=level, rounds=int(rounds), seed=int(seed), n_students=int(S),
                      n_steps=int(len(steps.y)))
    return out


def compare_trajectories(a: Trajectories, b: Trajectories, rounds: int = ROUNDS, level: float = LEVEL,
                         seed: int = SEED) -> dict:
    """B - A with its paired bootstrap interval, for AUC and mastery AUC."""
    return paired_bootstrap(pair_steps(a, b), rounds, level, seed)


def _signed(v) -> str:
    return "null" if v is None else f"{v:+.4f}"


def named_difference(a_name: str, b_name: str, result: dict) -> dict:
    """{"a", "b", metric: {..., "ahead": the name of the run ahead, or None on a tie}}."""
    out = {"a": a_name, "b": b_name}
    for m, r in result.items():
        v = r.get("verdict")
        out[m] = {**r, "ahead": b_name if v == "B ahead" else a_name if v == "A ahead" else None}
    return out


def difference_rows(diffs: list[dict]) -> list[dict]:
    """One row per (pair, metric), as the CLI prints it and the Compare page shows it."""
    rows = []
    for d in diffs:
        for m in METRICS:
            r = d[m]
            interval = ("null" if r["low"] is None else f"[{_signed(r['low'])}, {_signed(r['high'])}]")
            verdict = r["verdict"]
            if verdict is not None and verdict != "tie":
                verdict = f"{r['ahead']} ahead"
            rows.append({"B": d["b"], "A": d["a"], "metric": m, "value A": r["a"], "value B": r["b"],
                         "B - A": r["diff"], f"{round(100 * r['level'])}% interval": interval,
                         "verdict": verdict or "cannot be computed"})
    return rows


def difference_lines(diffs: list[dict]) -> list[str]:
    """The differences as text: B - A, its interval and the word."""
    if not diffs:
        return []
    first = diffs[0][METRICS[0]]
    lines = [f"differences B - A ({round(100 * first['level'])}% paired bootstrap over "
             f"{first['n_students']:,} students, {first['rounds']:,} rounds, seed {first['seed']}; "
             "'tie' when the interval holds 0):"]
    for row in difference_rows(diffs):
        interval = [k for k in row if k.endswith("interval")][0]
        lines.append(f"  {row['B']} - {row['A']}  {row['metric']:<11s} {_signed(row['B - A']):>8s}  "
                     f"{row[interval]:<19s} {row['verdict']}")
    return lines
