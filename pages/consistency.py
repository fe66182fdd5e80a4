"""Consistency: the DESIGN.md metrics of the selected checkpoints side by side, computed on a
chosen split, non-zero violations highlighted. Refreshes while a selected run trains."""
from __future__ import annotations

import streamlit as st

from cmkt.analysis.reference_metrics import DIFFERENCE_NOTE
from cmkt.train.kinds import GUARANTEES
from cmkt.runs import read_metrics
from dashboard.state import default_set, list_entries, model_rank, with_checkpoint
from dashboard.tables import show_metrics_table
from dashboard.tradeoff import show_tradeoff
from dashboard.widgets import pick_data, pick_entries

st.title("Consistency")
st.caption("Does mastery behave like mastery? Each row is a metric of DESIGN.md (rates with their "
           "counts), each column a checkpoint scored on the chosen data. A cumulative model has "
           "zero violations by construction; the original model and the classic baselines (DKT, BKT, "
           "PFA, measured in the same harness) are what it is judged against.")

entries = with_checkpoint(list_entries())
if len(entries) == 0:
    st.info("No checkpoints yet: train a run on the Train page or upload one on the Runs page.")
    st.stop()

chosen = pick_entries(entries, "con_pick", default_set(entries),
                      label="Checkpoints (by default every model kind's newest run on the same data)")
if not chosen:
    st.info("Pick at least one checkpoint.")
    st.stop()
chosen = sorted(chosen, key=model_rank)     # original, cumulative, dkt, bkt, pfa
kinds = [m for m in dict.fromkeys(e.mode for e in chosen) if m in GUARANTEES]
if kinds:
    st.caption("What each model guarantees of its mastery:  \n" + "  \n".join(
        f"**{m}**: {GUARANTEES[m]}." for m in kinds))
data, split = pick_data(chosen[0].data, "con_data")
live = [e for e in chosen if e.active]


@st.fragment(run_every=3.0 if live else None)
def table():
    fresh = {e.key: e for e in with_checkpoint(list_entries())}
    current = [fresh.get(e.key, e) for e in chosen]
    show_metrics_table(current, data, split, explain=True, key="con_table", with_reference=True)
    for e in current:
        if e.active:
            hist = read_metrics(e.path)
            ep = hist[-1]["epoch"] if hist else 0
            st.info(f"{e.name} is training (epoch {ep} done): this table is rescored whenever it saves "
                    "a new best checkpoint.", icon=":material/autorenew:")
    if live and not any(e.active for e in current):
        st.rerun(scope="app")


table()
st.caption("Highlighted: violation rates, red when non-zero, green when zero. `null`: a correlation "
           "that cannot be computed (constant input). Counts: students, interactions and predictions "
           "scored.")
st.caption("Rows **reference: …** are the reference system's own consistency numbers, for every "
           "model, beside cmkt's. " + DIFFERENCE_NOTE)

st.divider()
show_tradeoff(list_entries())
