"""The class at a glance: per skill, how the students who practised it stand at the end, and
which of them are below a mastery threshold (default: below "developing", i.e. "not yet"),
judged on mastery as shown (two decimals), like the levels.

"Needs attention" order: the largest share of students below the threshold first, then the
lowest mean final mastery."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .practice import DEVELOPING, as_shown, level, skill_name
from .scoring import Trajectories


def class_matrices(traj: Trajectories) -> dict:
    """Per student (rows) and skill (columns): final mastery, attempts and correct answers."""
    S, C = len(traj.student_ids), traj.num_skills
    lengths = np.diff(traj.offsets)
    final = np.full((S, C), np.nan)
    ok = lengths > 0
    final[ok] = traj.mastery[traj.offsets[1:][ok] - 1]
    row = np.repeat(np.arange(S), lengths)
    attempts = np.zeros((S, C), dtype=np.int64)
    correct = np.zeros((S, C), dtype=np.int64)
    np.add.at(attempts, (row, traj.skills), 1)
    np.add.at(correct, (row, traj.skills), traj.responses.astype(np.int64))
    return {"final": final, "attempts": attempts, "correct": correct}


def skills_table(traj: Trajectories, names, labels, threshold: float = DEVELOPING,
                 cm: dict | None = None) -> pd.DataFrame:
    """One row per skill someone practised, "needs attention" first: students who practised it,
    their mean final mastery (and its level), the share of them below `threshold`, attempts
    and accuracy over all attempts. `cm`: class_matrices(traj), when already at hand."""
    cm = cm or class_matrices(traj)
    att, fin = cm["attempts"], cm["final"]
    rows = []
    for k in np.nonzero(att.sum(axis=0) > 0)[0]:
        who = att[:, k] > 0
        f = fin[who, k]
        mean, low = float(np.mean(f)), as_shown(f) < threshold
        rows.append({"skill": skill_name(k, names, labels), "skill_index": int(k), "students": int(who.sum()),
                     "mean mastery": mean, "level": level(mean), "share below": float(np.mean(low)),
                     "below": int(np.sum(low)), "attempts": int(att[:, k].sum()),
                     "accuracy": float(cm["correct"][:, k].sum() / att[:, k].sum())})
    cols = ["skill", "skill_index", "students", "mean mastery", "level", "share below", "below",
            "attempts", "accuracy"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["share below", "mean mastery", "skill_index"], ascending=[False, True, True],
                          ignore_index=True)


def students_below(traj: Trajectories, skill: int, threshold: float = DEVELOPING,
                   cm: dict | None = None) -> pd.DataFrame:
    """The students who practised `skill` and end below `threshold` on it, weakest first."""
    cm = cm or class_matrices(traj)
    att = cm["attempts"][:, skill]
    fin = cm["final"][:, skill]
    rows = np.nonzero((att > 0) & (as_shown(fin) < threshold))[0]
    rows = rows[np.argsort(fin[rows], kind="stable")]
    return pd.DataFrame({
        "student": [str(traj.student_ids[i]) for i in rows],
        "final mastery": fin[rows].astype(float),
        "level": [level(v) for v in fin[rows]],
        "attempts": att[rows].astype(int),
        "correct": cm["correct"][rows, skill].astype(int),
        "accuracy": (cm["correct"][rows, skill] / np.maximum(att[rows], 1)).astype(float),
    })
