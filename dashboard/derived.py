"""Small things derived from a scored data set, cached with st.cache_data.

Each function takes the Scored object as `_scored` (not hashed: it is big and already cached
with st.cache_resource) and its cache key `key` = (checkpoint path, mtime, data, split), so a
cached result is found by key without touching the large arrays again.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from cmkt.educator import classview
from cmkt.runs.evaluate import trajectory_frame
from cmkt.analysis.metrics import compute_metrics


@st.cache_data(max_entries=64, show_spinner=False)
def metrics(key: tuple, _scored) -> dict:
    return compute_metrics(_scored.traj)


@st.cache_data(max_entries=256, show_spinner=False)
def student_arrays(key: tuple, _scored, student: str) -> dict:
    """One student's skills, responses, predictions, mastery and gains (all skills)."""
    i = _scored.data.index_of(student)
    return {k: np.array(v) for k, v in _scored.traj.student(i).items()}


@st.cache_data(max_entries=64, show_spinner=False)
def student_csv(key: tuple, _scored, student: str) -> bytes:
    return trajectory_frame(_scored, student).to_csv(index=False).encode()


@st.cache_resource(max_entries=6, show_spinner=False)
def class_matrices(key: tuple, _scored) -> dict:
    """Per student (rows) and skill (columns): final mastery, attempts and correct answers
    (cmkt.educator.classview.class_matrices), with the student ids and lengths.

    Cached as a resource, not as data: at 100,000 students and 100 skills the matrices weigh
    about 160 MB, and st.cache_data would pickle a copy of them on every page run. The arrays
    are shared between sessions, so they are made read-only."""
    traj = _scored.traj
    out = {**classview.class_matrices(traj), "student_ids": list(traj.student_ids),
           "lengths": np.diff(traj.offsets)}
    for v in out.values():
        if isinstance(v, np.ndarray):
            v.flags.writeable = False
    return out


@st.cache_data(max_entries=16, show_spinner=False)
def class_summaries(key: tuple, _scored) -> dict:
    """What the Class page needs beyond the matrices, once per data set (all vectorised):
    the skills someone practised, the students from weakest to strongest (the heatmap samples
    this order), each skill's spread of final mastery and the number of interactions."""
    cm = class_matrices(key, _scored)
    return {"used": np.nonzero(cm["attempts"].any(axis=0))[0], "order": classview.student_order(cm),
            "spread": classview.skill_spread(cm), "interactions": int(cm["lengths"].sum())}


@st.cache_data(max_entries=32, show_spinner=False)
def skill_quartiles(key: tuple, _scored, only_practised: bool) -> pd.DataFrame:
    """Per skill: box-plot figures of final mastery (cmkt.educator.classview.skill_quartiles)."""
    return classview.skill_quartiles(class_matrices(key, _scored), only_practised)


@st.cache_data(max_entries=64, show_spinner=False)
def weakest(key: tuple, _scored, skill: int, n: int) -> pd.DataFrame:
    """The n students with the lowest final mastery of `skill` among those who practised it."""
    cm = class_matrices(key, _scored)
    att = cm["attempts"][:, skill]
    rows = np.nonzero(att > 0)[0]
    fin = cm["final"][rows, skill]
    order = rows[np.argsort(fin, kind="stable")][:n]
    return pd.DataFrame({
        "student": [cm["student_ids"][i] for i in order],
        "final mastery": cm["final"][order, skill].astype(float),
        "attempts": att[order].astype(int),
        "accuracy": (cm["correct"][order, skill] / np.maximum(att[order], 1)).astype(float),
        "steps": cm["lengths"][order].astype(int),
    })


def student_violations(arr: dict) -> dict:
    """Counts of the three violation kinds for one student (same thresholds as cmkt.analysis.metrics)."""
    m, g = arr["mastery"], arr["gains"]
    drops = m[1:] < m[:-1] - 1e-6
    if arr.get("starts") is not None and len(m) > 1:      # a window scored afresh: no previous mastery
        drops = drops & ~arr["starts"][1:, None]
    mono = int(drops.sum()) if len(m) > 1 else 0
    return {"mastery drops": mono, "negative gains": int((g < -1e-6).sum()),
            "out of [0,1]": int(((m < -1e-6) | (m > 1 + 1e-6)).sum())}
