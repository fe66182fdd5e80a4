"""The metrics table shared by the Consistency and Compare pages."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from cmkt.errors import CmktError
from cmkt.analysis.metrics import METRIC_EXPLANATIONS, VIOLATION_KEYS
from cmkt.analysis.reference_metrics import REFERENCE_EXPLANATIONS, REFERENCE_KEYS, reference_metrics

from . import derived
from .state import Entry, get_scored, log

COUNT_KEYS = ("n_students", "n_interactions", "n_predictions")
# the reference system's own numbers (validate_cumulative_mastery.py), as rows labelled so
REF = "reference: "
REF_VIOLATIONS = tuple(REF + k for k in REFERENCE_KEYS if "violation" in k or k.startswith("students_with")
                       or k == "negative_gain_rate")


@st.cache_data(max_entries=64, show_spinner=False)
def reference(key: tuple, _scored) -> dict:
    return reference_metrics(_scored.traj)


def column_name(e: Entry, taken: set) -> str:
    name = f"{e.name} ({e.mode})"
    while name in taken:
        name += "'"
    taken.add(name)
    return name


def score_all(entries: list[Entry], data: str, split: str | None,
              with_reference: bool = False) -> tuple[dict, dict]:
    """({column: metrics dict}, {column: error message}) for every entry on data/split; with
    with_reference also the reference's numbers, under keys "reference: NAME"."""
    cols, errors, taken = {}, {}, set()
    for e in entries:
        name = column_name(e, taken)
        try:
            key, scored = get_scored(e, data, split)
            cols[name] = dict(derived.metrics(key, scored))
            if with_reference:
                cols[name].update({REF + k: v for k, v in reference(key, scored).items()})
        except CmktError as err:
            errors[name] = str(err)
        except Exception as err:  # noqa: BLE001 - shown as a message, never a traceback
            log.exception("scoring %s", e.key)
            errors[name] = f"{type(err).__name__}: {err}"
    return cols, errors


def metrics_frame(cols: dict[str, dict], explain: bool = True) -> pd.DataFrame:
    """Rows: the DESIGN.md metrics (with the counts), columns: one per checkpoint."""
    what = {**METRIC_EXPLANATIONS,
            **{REF + k: "reference's definition: " + REFERENCE_EXPLANATIONS[k] for k in REFERENCE_KEYS}}
    keys = [k for k in what if any(k in c for c in cols.values())]
    df = pd.DataFrame({name: [c.get(k) for k in keys] for name, c in cols.items()}, index=keys,
                      dtype=object)
    if explain:
        df.insert(0, "what it measures", [what[k] for k in keys])
    df.index.name = "metric"
    return df


def _fmt_cell(v):
    if v is None:
        return "null"
    if isinstance(v, float):
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.3g}"       # 5.6e-05: a small non-zero rate never reads as 0.0000
        return f"{v:.4f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def styled(df: pd.DataFrame):
    """Violation rows: non-zero red, zero green. Counts as integers, rates with 4 decimals (3
    significant digits below 0.001)."""
    value_cols = [c for c in df.columns if c != "what it measures"]

    def colour(row):
        out = []
        for c in df.columns:
            v = row[c]
            if c == "what it measures" or row.name not in VIOLATION_KEYS + REF_VIOLATIONS or v is None:
                out.append("")
            elif v > 0:
                out.append("background-color: #fde2e1; color: #a3130f; font-weight: 600")
            else:
                out.append("background-color: #e3f6e8; color: #17692f")
        return out
    return df.style.apply(colour, axis=1).format(_fmt_cell, subset=value_cols)


def show_metrics_table(entries: list[Entry], data: str, split: str | None, explain: bool = True,
                       key: str = "metrics_table", with_reference: bool = False) -> pd.DataFrame | None:
    """Score every entry (cached) and show the table: a static table (wrapped explanations)
    with explain=True, an interactive one otherwise; with_reference adds the reference's rows."""
    cols, errors = score_all(entries, data, split, with_reference)
    for name, msg in errors.items():
        st.error(f"{name}: {msg}")
    if not cols:
        return None
    df = metrics_frame(cols, explain)
    if explain:
        st.table(styled(df))
    else:
        st.dataframe(styled(df), width="stretch", key=key, height=min(40 + 35 * len(df), 600))
    return df
