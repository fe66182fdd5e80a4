"""Compare: two or more checkpoints side by side: metrics, training curves, one student."""
from __future__ import annotations

import streamlit as st

from cmkt.runs import read_metrics
from dashboard import derived
from dashboard.charts import mastery_figure, training_curves
from dashboard.differences import show_differences
from dashboard.state import default_pair, get_scored, list_entries, user_errors, with_checkpoint
from dashboard.tables import show_metrics_table
from dashboard.widgets import pick_data, pick_entries, pick_student

st.title("Compare")

entries = with_checkpoint(list_entries())
if len(entries) < 2:
    st.info("Comparing needs at least two checkpoints: train a pair on the Train page.")
    st.stop()

chosen = pick_entries(entries, "cmp_pick", default_pair(entries), label="Checkpoints to compare (two or more)")
if len(chosen) < 2:
    st.warning("Pick at least two checkpoints.")
    st.stop()
data, split = pick_data(chosen[0].data, "cmp_data")

st.subheader("Metrics")
show_metrics_table(chosen, data, split, explain=False, key="cmp_table")

st.subheader("Differences, with 95% intervals")
show_differences(chosen, data, split, key="cmp_diff")

st.subheader("Training curves")
hist = {e.name: read_metrics(e.path) for e in chosen if e.info is not None}
hist = {k: v for k, v in hist.items() if v}
if hist:
    st.plotly_chart(training_curves(hist), key="cmp_curves")
missing = [e.name for e in chosen if e.name not in hist]
if missing:
    st.caption("No training history (metrics.jsonl) for: " + ", ".join(missing))

st.subheader("One student under each model")
scored = {}
for e in chosen:
    with user_errors(stop=False):
        scored[e.key] = get_scored(e, data, split)
if not scored:
    st.stop()
common = None
for _, sc in scored.values():
    ids = set(sc.data.student_ids)
    common = ids if common is None else common & ids
first = next(iter(scored.values()))[1]
ids = [s for s in first.data.student_ids if s in common]
if not ids:
    st.warning("These checkpoints share no student on this data.")
    st.stop()
student = pick_student(ids, "cmp_student")
per_row = 2 if len(scored) <= 4 else 3
items = [(e, scored[e.key]) for e in chosen if e.key in scored]
for i in range(0, len(items), per_row):
    cols = st.columns(per_row)
    for col, (e, (key, sc)) in zip(cols, items[i:i + per_row]):
        with col, user_errors(stop=False):
            arr = derived.student_arrays(key, sc, student)
            v = derived.student_violations(arr)
            st.markdown(f"**{e.name}** · `{e.mode}` — " + ", ".join(f"{k}: {n}" for k, n in v.items()))
            st.plotly_chart(mastery_figure(arr, sc.skill_names, sc.skill_labels, height=380),
                            key=f"cmp_fig_{e.key}")
