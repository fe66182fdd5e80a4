"""What an educator reads off one student: mastery levels in words and what to practise next.

Levels (the thresholds live here and nowhere else): mastery below 0.4 is "not yet", 0.4 up to
0.7 "developing", 0.7 and above "secure".

Practise next: among the skills the student has practised, put first those that are not yet
secure and where practice has paid off so far, the largest mastery gain per attempt first; then
the not-yet-secure skills where practice showed no gain (lowest mastery first: they need a
different approach, not more of the same); last, secure skills (lowest first) to keep fresh.
Why: practice is most likely to change a skill that is not mastered yet and that has been
responding to practice; a skill already secure has little left to gain. The gain of a skill is
its mastery now minus its mastery just before the first attempt (after step 1 when that was
the first step, as the model has no earlier state), so it uses only what the model reported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DEVELOPING = 0.4          # mastery from here on is "developing"
SECURE = 0.7              # mastery from here on is "secure"
LEVELS = ("not yet", "developing", "secure")
LEVEL_COLORS = {"not yet": "#d62f2f", "developing": "#f3a712", "secure": "#1f9d55"}
LEVEL_LEGEND = (f"Mastery levels: not yet = below {DEVELOPING:.1f}; developing = {DEVELOPING:.1f} "
                f"up to {SECURE:.1f}; secure = {SECURE:.1f} or more (mastery runs from 0 to 1).")
MIN_GAIN = 0.01           # a smaller change in mastery does not count as a gain
TOP = 3


def as_shown(m):
    """Mastery as shown (two decimals): levels and thresholds judge this value, so a 0.399 shown as
    0.40 is "developing" and never "below 0.40"."""
    return np.round(m, 2)


def level(m: float) -> str:
    """The educator's word for a mastery value (judged as shown)."""
    if m is None or not np.isfinite(m):
        return "—"
    m = float(as_shown(m))
    return LEVELS[0] if m < DEVELOPING else LEVELS[1] if m < SECURE else LEVELS[2]


def below_words(threshold: float) -> str:
    """What 'below the threshold' means, in words: e.g. "below 0.40 (not yet)"."""
    if threshold == DEVELOPING:
        return f"below {threshold:.2f} (not yet)"
    if threshold == SECURE:
        return f"below {threshold:.2f} (not yet secure)"
    return f"below {threshold:.2f}"


def skill_name(k: int, names, labels) -> str:
    """A skill's name; 'skill <id>' where the data has no name for it."""
    name, lab = str(names[k]), str(labels[k])
    return f"skill {lab}" if name == lab else name


def skill_rows(student: dict, names, labels) -> pd.DataFrame:
    """Per practised skill (first practised first): attempts, correct answers, accuracy, mastery
    now, its level and the gain since just before the first attempt."""
    s, r, m = student["skills"], student["responses"], student["mastery"]
    uniq, first = np.unique(s, return_index=True)
    rows = []
    for k, t0 in sorted(zip(uniq.tolist(), first.tolist()), key=lambda x: x[1]):
        at = s == k
        now = float(m[-1, k])
        before = float(m[t0 - 1, k] if t0 > 0 else m[0, k])
        rows.append({"skill": skill_name(k, names, labels), "skill_index": int(k), "attempts": int(at.sum()),
                     "correct": int(r[at].sum()), "accuracy": float(r[at].mean()), "mastery": now,
                     "level": level(now), "gain": now - before})
    cols = ["skill", "skill_index", "attempts", "correct", "accuracy", "mastery", "level", "gain"]
    return pd.DataFrame(rows, columns=cols)


@dataclass
class Suggestion:
    skill: str
    skill_index: int
    mastery: float
    level: str
    attempts: int
    correct: int
    gain: float
    reason: str


def _reason(row, tier: int) -> str:
    done = f"{row.attempts} attempt{'s' * (row.attempts != 1)}, {row.correct} correct"
    if tier == 0:
        return (f"{row.level} ({row.mastery:.2f}) and practice has paid off: mastery rose "
                f"{row.gain:+.2f} over {done} ({row.gain / row.attempts:+.3f} per attempt)")
    if tier == 1:
        return (f"{row.level} ({row.mastery:.2f}) and practice has not raised it yet ({done}): "
                "try a different approach or give help")
    return f"already secure ({row.mastery:.2f}, {done}): a little practice keeps it fresh"


def practise_next(student: dict, names, labels, n: int = TOP) -> list[Suggestion]:
    """The n skills to practise next, by the rule in the module docstring, each with its reason."""
    rows = skill_rows(student, names, labels)
    ranked = []
    for row in rows.itertuples(index=False):
        tier = 2 if row.mastery >= SECURE else 0 if row.gain >= MIN_GAIN else 1
        key = -row.gain / row.attempts if tier == 0 else row.mastery
        ranked.append((tier, key, row.skill_index, row))
    ranked.sort(key=lambda x: x[:3])
    return [Suggestion(row.skill, row.skill_index, row.mastery, row.level, row.attempts, row.correct,
                       row.gain, _reason(row, tier)) for tier, _, _, row in ranked[:n]]


def summary_text(rows: pd.DataFrame) -> str:
    """One plain-language paragraph: the strongest and the weakest practised skill, and how many
    skills are at each level."""
    if rows.empty:
        return "No practice yet."
    best = rows.loc[rows["mastery"].idxmax()]
    worst = rows.loc[rows["mastery"].idxmin()]
    counts = rows["level"].value_counts()
    parts = [f"Strongest: {best.skill} ({best.mastery:.2f}, {best.level})"]
    if len(rows) > 1:
        parts.append(f"weakest practised: {worst.skill} ({worst.mastery:.2f}, {worst.level}; "
                     f"{worst.attempts} attempts, {worst.correct} correct)")
    lv = ", ".join(f"{int(counts[name])} {name}" for name in reversed(LEVELS) if name in counts)
    return "; ".join(parts) + f". Of {len(rows)} practised skills: {lv}."
