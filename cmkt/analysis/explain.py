"""Every prediction of the `mastery` predictor, explained: its logit is the sum of three parts
(mastery of the skill about to be answered, that skill's difficulty, and the momentary part the
recent answers add), kept per step by scoring."""
from __future__ import annotations

import math

import numpy as np

from cmkt.model.gainakt2 import PART_NAMES

PART_LABELS = {"mastery": "mastery of {skill}", "difficulty": "difficulty of {skill}",
               "momentary": "recent answers"}


def explain_step(student: dict, t: int, skill_names) -> dict | None:
    """Why the model predicted what it did at step t (0-based) of one student (the arrays of
    Trajectories.student). None when the model has no parts (the `mlp` predictor).
    Returns prob, skill, mastery_before (m_{t-1}[s_t], None at a student's first step), parts
    {name: logit}, and a one-line sentence such as
    'P(correct) 0.43 = mastery of Fractions 0.61 (+0.90), difficulty of Fractions (-1.10),
    recent answers (-0.10)'."""
    parts = student.get("parts")
    if parts is None:
        return None
    s = int(student["skills"][t])
    skill = str(skill_names[s])
    before = float(student["mastery"][t - 1, s]) if t > 0 else None
    values = {name: float(parts[t, i]) for i, name in enumerate(PART_NAMES)}
    logit = sum(values.values())
    prob = 1.0 / (1.0 + math.exp(-logit))
    mastery_txt = f" {before:.2f}" if before is not None else " (before any answer)"
    sign = (lambda v: f"{0.0 if abs(v) < 0.005 else v:+.2f}")      # never "-0.00"
    bits = [f"{PART_LABELS['mastery'].format(skill=skill)}{mastery_txt} ({sign(values['mastery'])})",
            f"{PART_LABELS['difficulty'].format(skill=skill)} ({sign(values['difficulty'])})",
            f"{PART_LABELS['momentary']} ({sign(values['momentary'])})"]
    return {"step": t + 1, "prob": prob, "logit": logit, "skill": skill, "skill_index": s,
            "mastery_before": before, "parts": values,
            "labels": {k: v.format(skill=skill) for k, v in PART_LABELS.items()},
            "response": int(student["responses"][t]),
            "sentence": f"P(correct) {prob:.2f} = " + ", ".join(bits)}


def part_columns(parts: np.ndarray | None) -> dict:
    """The parts as named columns (for CSV exports); empty without parts."""
    if parts is None:
        return {}
    return {f"logit_{name}": parts[:, i] for i, name in enumerate(PART_NAMES)}
