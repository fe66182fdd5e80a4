"""cmkt.analysis.explain: the sentence and numbers behind one prediction of the mastery predictor."""
import math

import numpy as np
import pytest

from cmkt.analysis.explain import explain_step, part_columns


def student(parts, mastery, skills=(0, 1, 0), responses=(1, 0, 1)):
    return {"skills": np.array(skills), "responses": np.array(responses),
            "mastery": np.array(mastery, dtype=np.float32), "parts": np.array(parts, dtype=np.float32)}


def test_explain_a_step_by_hand():
    s = student(parts=[[0.1, -0.2, 0.0], [0.3, 0.1, -0.4], [0.9, -1.1, -0.1]],
                mastery=[[0.55, 0.5], [0.58, 0.52], [0.61, 0.52]])
    e = explain_step(s, 2, ["Fractions", "Decimals"])
    assert e["step"] == 3 and e["skill"] == "Fractions" and e["response"] == 1
    assert e["mastery_before"] == pytest.approx(0.58)            # m_{t-1}[s_t]: step 2's mastery of Fractions
    assert e["logit"] == pytest.approx(-0.3, abs=1e-6)
    assert e["prob"] == pytest.approx(1 / (1 + math.exp(0.3)))
    assert e["sentence"] == ("P(correct) 0.43 = mastery of Fractions 0.58 (+0.90), difficulty of Fractions "
                             "(-1.10), recent answers (-0.10)")


def test_first_step_and_tiny_parts():
    s = student(parts=[[0.2, -0.001, 0.0]], mastery=[[0.5, 0.5]], skills=(1,), responses=(0,))
    e = explain_step(s, 0, ["A", "B"])
    assert e["mastery_before"] is None
    assert "mastery of B (before any answer) (+0.20)" in e["sentence"]
    assert "(-0.00)" not in e["sentence"] and "difficulty of B (+0.00)" in e["sentence"]


def test_no_parts_no_explanation():
    s = student(parts=[[0, 0, 0]], mastery=[[0.5, 0.5]], skills=(0,), responses=(1,))
    s["parts"] = None
    assert explain_step(s, 0, ["A", "B"]) is None
    assert part_columns(None) == {}
    cols = part_columns(np.array([[1.0, 2.0, 3.0]]))
    assert list(cols) == ["logit_mastery", "logit_difficulty", "logit_momentary"]
