"""The educator's view in the library: levels, practise-next and the class skills table on
hand-made trajectories with a known right answer."""
from __future__ import annotations

import numpy as np
import pytest

from cmkt.educator.classview import skills_table, students_below
from cmkt.educator.practice import (DEVELOPING, LEVEL_LEGEND, SECURE, below_words, level, practise_next,
                           skill_name, skill_rows, summary_text)
from cmkt.analysis.scoring import Trajectories

NAMES = ["Counting", "Addition", "Fractions", "Division", "Ratios"]
LABELS = ["1", "2", "3", "4", "5"]


def walk(start, skills, step_gain, responses=None) -> dict:
    """A student whose mastery of the answered skill rises by step_gain[skill] at each answer."""
    m = np.array(start, float)
    rows = []
    for s in skills:
        m[s] += step_gain[s]
        rows.append(m.copy())
    T = len(skills)
    r = np.array(responses if responses is not None else [1] * T)
    return {"skills": np.array(skills), "responses": r, "probs": np.full(T, 0.5),
            "mastery": np.array(rows), "gains": np.zeros((T, len(start)))}


# skill 0: 0.2 -> 0.5 in 3 attempts (+0.1 each); skill 1: 0.3 -> 0.35 in 2 (+0.025 each);
# skill 2: stuck at 0.1 after 2; skill 3: secure (0.85); skill 4: never practised
STUDENT = walk([0.2, 0.3, 0.1, 0.75, 0.05], [3, 0, 1, 0, 2, 0, 1, 2, 3],
               {0: 0.1, 1: 0.025, 2: 0.0, 3: 0.05}, responses=[1, 1, 0, 1, 0, 1, 1, 0, 1])


def test_levels_thresholds_and_legend():
    assert (DEVELOPING, SECURE) == (0.4, 0.7)
    assert [level(v) for v in (0.0, 0.39, 0.4, 0.69, 0.7, 1.0)] == \
        ["not yet", "not yet", "developing", "developing", "secure", "secure"]
    assert level(0.3999) == "developing"          # judged as shown: 0.40
    assert level(float("nan")) == "—"
    assert "0.4" in LEVEL_LEGEND and "0.7" in LEVEL_LEGEND and "secure" in LEVEL_LEGEND
    assert below_words(DEVELOPING) == "below 0.40 (not yet)"


def test_skill_name_falls_back_to_the_id():
    assert skill_name(1, NAMES, LABELS) == "Addition"
    assert skill_name(0, ["7"], ["7"]) == "skill 7"


def test_skill_rows():
    rows = skill_rows(STUDENT, NAMES, LABELS).set_index("skill_index")
    assert list(rows.index) == [3, 0, 1, 2]                       # first practised first
    assert rows.loc[0, "attempts"] == 3 and rows.loc[0, "correct"] == 3
    assert rows.loc[0, "gain"] == pytest.approx(0.3)
    assert rows.loc[1, "gain"] == pytest.approx(0.05) and rows.loc[1, "correct"] == 1
    assert rows.loc[2, "gain"] == pytest.approx(0.0) and rows.loc[2, "level"] == "not yet"
    assert rows.loc[3, "mastery"] == pytest.approx(0.85) and rows.loc[3, "level"] == "secure"


def test_practise_next_order_and_reasons():
    nxt = practise_next(STUDENT, NAMES, LABELS)
    # gained most per attempt and not secure, then less per attempt, then stuck; secure last
    assert [s.skill_index for s in nxt] == [0, 1, 2]
    assert [s.skill for s in nxt] == ["Counting", "Addition", "Fractions"]
    assert "paid off" in nxt[0].reason and "+0.100 per attempt" in nxt[0].reason
    assert "not raised" in nxt[2].reason and "2 attempts, 0 correct" in nxt[2].reason
    all4 = practise_next(STUDENT, NAMES, LABELS, n=10)
    assert [s.skill_index for s in all4] == [0, 1, 2, 3]          # never an unpractised skill
    assert "secure" in all4[3].reason


def test_practise_next_prefers_gain_per_attempt_over_total_gain():
    # skill 0 gains more in total (0.3 in 6) but skill 1 more per attempt (0.2 in 2)
    st = walk([0.1, 0.1], [0] * 6 + [1, 1], {0: 0.05, 1: 0.1})
    assert [s.skill_index for s in practise_next(st, NAMES, LABELS)] == [1, 0]


def test_practise_next_stuck_skills_lowest_first_and_empty_student():
    st = walk([0.3, 0.2, 0.5], [2, 0, 1, 2, 0, 1], {0: 0.0, 1: 0.0, 2: 0.0})
    assert [s.skill_index for s in practise_next(st, NAMES, LABELS)] == [1, 0, 2]
    empty = {"skills": np.zeros(0, int), "responses": np.zeros(0), "mastery": np.zeros((0, 3))}
    assert practise_next(empty, NAMES, LABELS) == []
    assert summary_text(skill_rows(empty, NAMES, LABELS)) == "No practice yet."


def test_summary_text():
    text = summary_text(skill_rows(STUDENT, NAMES, LABELS))
    assert text.startswith("Strongest: Division (0.85, secure); weakest practised: Fractions (0.10, not yet; "
                           "2 attempts, 0 correct).")
    assert "Of 4 practised skills: 1 secure, 1 developing, 2 not yet." in text


# ---- class table ------------------------------------------------------------------------

def class_traj() -> Trajectories:
    """Four students whose final mastery is known: skill 0 finals A .2 B .3 C .5 D .9; skill 1
    (A, B) .35 .8; skill 2 (C only) .1; skill 3 nobody."""
    finals = {"A": [0.2, 0.35, 0.6, 0.5], "B": [0.3, 0.8, 0.6, 0.5], "C": [0.5, 0.6, 0.1, 0.5],
              "D": [0.9, 0.6, 0.6, 0.5]}
    seqs = {"A": ([0, 1], [1, 0]), "B": ([0, 1, 1], [0, 1, 1]), "C": ([0, 2], [1, 0]), "D": ([0], [1])}
    skills, resp, mast = [], [], []
    for sid, (s, r) in seqs.items():
        skills += s
        resp += r
        mast += [finals[sid]] * len(s)
    N = len(skills)
    return Trajectories(list(seqs), np.array([0, 2, 5, 7, 8]), np.array(skills), np.array(resp),
                        np.full(N, 0.5), np.array(mast), np.zeros((N, 4)), "cumulative")


def test_skills_table_needs_attention_order():
    t = skills_table(class_traj(), NAMES, LABELS)
    assert list(t["skill"]) == ["Fractions", "Counting", "Addition"]      # skill 3: nobody practised it
    row = t.set_index("skill_index")
    assert row.loc[2, "share below"] == 1.0 and row.loc[2, "students"] == 1
    assert row.loc[0, "share below"] == 0.5 and row.loc[0, "mean mastery"] == pytest.approx(0.475)
    assert row.loc[1, "share below"] == 0.5 and row.loc[1, "mean mastery"] == pytest.approx(0.575)
    assert row.loc[1, "attempts"] == 3 and row.loc[1, "accuracy"] == pytest.approx(2 / 3)
    assert row.loc[0, "level"] == "developing" and row.loc[2, "level"] == "not yet"
    secure = skills_table(class_traj(), NAMES, LABELS, threshold=SECURE).set_index("skill_index")
    assert secure.loc[0, "share below"] == 0.75 and secure.loc[0, "below"] == 3


def test_students_below():
    tr = class_traj()
    assert list(students_below(tr, 0)["student"]) == ["A", "B"]            # weakest first
    assert list(students_below(tr, 0, threshold=SECURE)["student"]) == ["A", "B", "C"]
    b = students_below(tr, 1)
    assert list(b["student"]) == ["A"] and b["attempts"][0] == 1 and b["accuracy"][0] == 0.0
    assert students_below(tr, 3).empty


def test_threshold_judges_mastery_as_shown():
    tr = class_traj()
    tr.mastery[0:2, 0] = 0.3996                   # A: shown as 0.40, "developing", so not below 0.40
    assert level(0.3996) == "developing"
    assert list(students_below(tr, 0)["student"]) == ["B"]
    assert skills_table(tr, NAMES, LABELS).set_index("skill_index").loc[0, "below"] == 1


def test_educator_modules_never_import_streamlit():
    import subprocess
    import sys
    from pathlib import Path
    code = ("import sys, cmkt.educator.practice, cmkt.educator.classview, cmkt.educator.report; "
            "assert cmkt.educator.report.__file__.startswith(sys.argv[1]), cmkt.educator.report.__file__; "
            "assert 'streamlit' not in sys.modules, 'streamlit imported'")
    root = str(Path(__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", code, root], check=True, cwd=root)
