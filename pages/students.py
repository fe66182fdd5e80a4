"""Students: one student's mastery curves, gains and per-skill summary, under one model and
(side by side) under its original/cumulative partner."""
from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard import derived, educator
from cmkt.analysis.explain import explain_step
from dashboard.charts import explanation_figure, gain_heatmap, mastery_figure, practised_skills, skill_summary
from dashboard.state import fmt, get_scored, pair_partner, user_errors
from dashboard.widgets import data_notes, pick_checkpoint_and_data, pick_student

st.title("Students")
educator.howto_students()


def entry_bound(scored):
    """The momentary_bound of the scored model (None: unbounded)."""
    return (scored.meta.get("model_config") or {}).get("momentary_bound")


entries, entry, data, split = pick_checkpoint_and_data("stu")

with user_errors():
    key, scored = get_scored(entry, data, split)
data_notes(data, scored.data.notes)
ids = list(scored.data.student_ids)
if not ids:
    st.error(f"{data}: no students in this data set / split.")
    st.stop()

s1, s2 = st.columns([2, 3], vertical_alignment="bottom")
student = pick_student(ids, "stu_student", from_url=True, container=s1)
show_true = False
if scored.traj.true_mastery is not None:
    show_true = s2.checkbox("Show the simulator's true mastery (dotted)", key="stu_true")

# the URL always names what is shown, so it can be shared and survives a reload
params = {"run": entry.key, "student": student}
if data != entry.data:
    params["data"] = data
if split not in (None, "test"):
    params["split"] = split
if dict(st.query_params) != params:
    st.query_params.from_dict(params)

with user_errors():
    arr = derived.student_arrays(key, scored, student)
names, labels = scored.skill_names, scored.skill_labels
T = len(arr["skills"])
practised = np.unique(arr["skills"])
shown = None
if len(practised) > 12:
    n_sk = st.columns([2, 3])[0].slider(f"Skills shown: the most practised of the {len(practised)} this student practised",
                     1, len(practised), len(practised), key=f"stu_nskills_{len(practised)}")
    if n_sk < len(practised):
        shown = practised_skills(arr["skills"], top=n_sk)

m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("Steps", T)
m2.metric("Skills practised", len(practised))
m3.metric("Accuracy", fmt(float(arr["responses"].mean()) if T else None, 3))
m4.metric("Mean predicted P(correct)", fmt(float(np.nanmean(arr["probs"])) if np.isfinite(arr["probs"]).any() else None, 3))
viol = derived.student_violations(arr)
m5.metric(f"Violations (all {scored.traj.num_skills} skills)", sum(viol.values()),
          help="counted over every step and every skill the model tracks, practised or not (as in the "
               "Consistency table): " + ", ".join(f"{k}: {v}" for k, v in viol.items()), delta=None)

st.subheader(f"Mastery of {student} · {entry.name} ({entry.mode})")
st.caption("One line per practised skill: its mastery after every step. Markers sit on the line of the "
           "skill answered at that step: green circle = correct, red cross = wrong. Hover for the step, "
           "skill, answer and the predicted probability of a correct answer.")
fig = mastery_figure(arr, names, labels, show_true=show_true, skills_shown=shown)
st.plotly_chart(fig, key="stu_mastery")

st.subheader("Why this prediction?")
if arr.get("parts") is None:
    st.caption(f"{entry.name} predicts with the `mlp` predictor: its mastery is a side output that the "
               "prediction does not read. A run trained with `predictor=mastery` explains every "
               "prediction as mastery + difficulty + recent answers.")
elif T:
    bound = entry_bound(scored)
    cap = "not capped" if bound is None else f"capped at ±{bound:g}"
    st.caption("The model's prediction is built on mastery: its logit is the sum of the mastery of the "
               "skill about to be answered (before the answer), that skill's difficulty and what the recent "
               f"answers add ({cap}). Hover an answer on the chart above for the same three numbers.")
    step = st.slider("Step", 1, T, T, key=f"stu_step_{student}")
    expl = explain_step(arr, step - 1, names)
    st.markdown(f"**{expl['sentence']}**")
    st.plotly_chart(explanation_figure(expl), key="stu_explain")

st.subheader("Learning gains")
st.caption("Practised skills × steps: the gain credited to each skill at each step (blue positive, "
           "red negative). Squares mark the skill answered at each step.")
st.plotly_chart(gain_heatmap(arr, names, labels, skills_shown=shown), key="stu_gains")

st.subheader("Per-skill summary")
summary = skill_summary(arr, names, labels)
st.dataframe(summary, hide_index=True, width="stretch", column_config={
    c: st.column_config.NumberColumn(format="%.3f") for c in
    ("accuracy", "first mastery", "last mastery", "change", "total gain")})

st.download_button("Download this trajectory (CSV)", derived.student_csv(key, scored, student),
                   file_name=f"{entry.name}-{student}.csv", mime="text/csv", icon=":material/download:",
                   key="stu_csv")

educator.student_section(scored, student, arr, entry.name)

# ---- the same student under the other model ---------------------------------------------

st.divider()
st.subheader("Original vs cumulative")
others = [e for e in entries if e.key != entry.key]
partner = pair_partner(entry, entries)
if partner is not None:
    st.caption(f"{entry.name} was trained as a pair with {partner.name}: the same student under both.")
else:
    opts = [None] + [e.key for e in others]
    by_key = {e.key: e for e in others}
    pick = st.selectbox("This run has no pair partner: compare with another checkpoint", opts,
                        format_func=lambda k: "—" if k is None else by_key[k].label, key="stu_partner")
    partner = by_key.get(pick)

if partner is not None:
    left, right = sorted([entry, partner], key=lambda e: e.mode != "original")
    cols = st.columns(2)
    for col, e in zip(cols, (left, right)):
        with col, user_errors(stop=False):
            k2, sc2 = (key, scored) if e.key == entry.key else get_scored(e, data, split)
            if student not in sc2.data.student_ids:
                raise KeyError(f"student {student!r} is not in {e.name}'s view of {data}")
            a2 = derived.student_arrays(k2, sc2, student)
            v2 = derived.student_violations(a2)
            st.markdown(f"**{e.name}** · `{e.mode}` — " + ", ".join(f"{k}: {v}" for k, v in v2.items()))
            st.plotly_chart(mastery_figure(a2, sc2.skill_names, sc2.skill_labels, height=400,
                                           show_true=show_true, skills_shown=shown),
                            key=f"stu_side_{e.key}")
elif not others:
    st.caption("No other checkpoint to compare with.")

if show_true:
    st.caption("Simulated students: the simulator knows every student's true mastery; the dotted "
               "lines show how close each model's mastery is to the truth.")
