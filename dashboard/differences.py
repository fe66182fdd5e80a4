"""The Compare page's differences: B - A for AUC and mastery AUC with a 95% paired bootstrap
interval over students (cmkt.analysis.bootstrap), each checkpoint against the first, as
`cmkt compare` prints them."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from cmkt.analysis.bootstrap import ROUNDS, SEED, compare_trajectories, difference_rows, named_difference
from cmkt.errors import CmktError

from .state import Entry, get_scored, log
from .tables import column_name


@st.cache_data(max_entries=32, show_spinner=False)
def difference(key_a: tuple, key_b: tuple, _a, _b, name_a: str, name_b: str) -> dict:
    return named_difference(name_a, name_b, compare_trajectories(_a.traj, _b.traj, rounds=ROUNDS, seed=SEED))


def differences_frame(entries: list[Entry], data: str, split: str | None) -> tuple[pd.DataFrame | None, dict]:
    """(one row per (checkpoint, metric) against the first checkpoint, {name: error}). A checkpoint
    that cannot be scored is left out silently: the metrics table above already says why."""
    taken: set = set()
    names = [column_name(e, taken) for e in entries]
    errors, diffs = {}, []
    try:
        key_a, a = get_scored(entries[0], data, split)
    except Exception:  # noqa: BLE001 - reported by the metrics table
        return None, errors
    for e, name in zip(entries[1:], names[1:]):
        try:
            key_b, b = get_scored(e, data, split)
        except Exception:  # noqa: BLE001 - reported by the metrics table
            continue
        try:
            diffs.append(difference(key_a, key_b, a, b, names[0], name))
        except CmktError as err:
            errors[name] = str(err)
        except Exception as err:  # noqa: BLE001 - shown as a message, never a traceback
            log.exception("bootstrap %s", e.key)
            errors[name] = f"{type(err).__name__}: {err}"
    return (pd.DataFrame(difference_rows(diffs)) if diffs else None), errors


def _colour(row):
    v = row["verdict"]
    style = ("" if v in ("tie", "cannot be computed") else
             "background-color: #e3f6e8; color: #17692f; font-weight: 600")
    return [style if c == "verdict" else "" for c in row.index]


def show_differences(entries: list[Entry], data: str, split: str | None, key: str = "diff_table"):
    """The differences table with its caption; returns the frame (None when nothing to show)."""
    df, errors = differences_frame(entries, data, split)
    for name, msg in errors.items():
        st.error(f"{name}: {msg}")
    if df is None:
        return None
    fmt = {c: (lambda v: "null" if v is None or v != v else f"{v:.4f}") for c in ("value A", "value B")}
    fmt["B - A"] = lambda v: "null" if v is None or v != v else f"{v:+.4f}"
    st.dataframe(df.style.apply(_colour, axis=1).format(fmt), width="stretch", hide_index=True, key=key)
    st.caption(f"B − A against the first checkpoint, with a 95% paired bootstrap interval: {ROUNDS:,} "
               f"resamples of the students (seed {SEED}), both models scored on the same students and "
               "steps. **tie** when the interval contains 0: the data cannot tell the two apart. Same "
               "numbers as `cmkt compare A B --data D`.")
    return df
