"""Class: the skills that need attention and who needs help with each, final mastery of every
student on every skill, its spread per skill, and the students weakest on a chosen skill (each
student a link to the Students page); the class report to download."""
from __future__ import annotations

import numpy as np
import streamlit as st

from cmkt.practice import below_words
from dashboard import derived, educator
from dashboard.charts import class_heatmap, distribution_figure, skill_label
from dashboard.state import fmt, get_scored, page, user_errors
from dashboard.widgets import data_notes, pick_checkpoint_and_data

st.title("Class")
educator.howto_class()

_, entry, data, split = pick_checkpoint_and_data("cls")

# the URL names what is shown, so a link can be shared and survives a reload
params = {"run": entry.key}
if data != entry.data:
    params["data"] = data
if split not in (None, "test"):
    params["split"] = split
if dict(st.query_params) != params:
    st.query_params.from_dict(params)

with user_errors():
    key, scored = get_scored(entry, data, split)
    cm = derived.class_matrices(key, scored)
data_notes(data, scored.data.notes)

final, attempts = cm["final"], cm["attempts"]
ids = cm["student_ids"]
S, C = final.shape
ylab_all = [skill_label(k, scored.skill_names, scored.skill_labels) for k in range(C)]
used = np.nonzero(attempts.sum(axis=0) > 0)[0]
if S == 0 or used.size == 0:
    st.warning("No interactions in this data set / split.")
    st.stop()

m1, m2, m3 = st.columns(3)
m1.metric("Students", f"{S:,}")
m2.metric("Skills practised", f"{used.size} of {C}")
m3.metric("Interactions", f"{int(cm['lengths'].sum()):,}")

# links to the Students page keep the data and split shown here
extra = {}
if data != entry.data:
    extra["data"] = data
if split not in (None, "test"):
    extra["split"] = split


def student_link(col, sid: str) -> None:
    col.page_link(page("students"), label=sid, icon=":material/person:",
                  query_params={"run": entry.key, "student": sid, **extra})


# ---- who needs help with which skill ----------------------------------------------------
st.subheader("Skills that need attention")
st.caption("Per skill, over the students who practised it: mean final mastery (and its level), the share "
           "of them below the chosen level, attempts and accuracy. Largest share below first.")
threshold = educator.pick_threshold()
table = educator.attention_table(key, scored, threshold)
att_skill = educator.skills_attention(table)
needy = educator.below(key, scored, int(att_skill), threshold)
att_name = table.set_index("skill_index").loc[att_skill, "skill"]
if needy.empty:
    st.caption(f"Nobody who practised {att_name} is {below_words(threshold)}.")
else:
    b1, b2 = st.columns([3, 1], vertical_alignment="bottom")
    b1.markdown(f"**{len(needy)} student{'s' * (len(needy) != 1)} {below_words(threshold)} on "
                f"{att_name}**, weakest first (each opens the Students page):")
    n_list = b2.number_input("How many to list", 1, len(needy), min(10, len(needy)),
                             key=f"cls_nbelow_{len(needy)}")
    hdr = st.columns([2, 2, 1, 1])
    for col, text in zip(hdr, ("student", "final mastery", "attempts", "accuracy")):
        col.markdown(f"**{text}**")
    for row in needy.head(int(n_list)).to_dict("records"):
        cols = st.columns([2, 2, 1, 1])
        student_link(cols[0], row["student"])
        educator.level_progress(cols[1], row["final mastery"], row["level"])
        cols[2].markdown(f"{row['attempts']} ({row['correct']} correct)")
        cols[3].markdown(fmt(row["accuracy"], 2))
    if len(needy) > n_list:
        st.caption(f"… and {len(needy) - int(n_list)} more.")
educator.class_download(scored, threshold, entry.name)

# ---- heatmap ----------------------------------------------------------------------------
st.subheader("Final mastery: skills × students")
h1, h2 = st.columns([2, 3])
max_n = int(min(S, 2000))
n_show = h1.slider("Students shown", min(10, S), max_n, min(200, max_n), key="cls_n") if S > 10 else S
only_used = h2.checkbox("Only skills someone practised", value=True, key="cls_used")
skills_idx = used if only_used else np.arange(C)
sub = final[:, skills_idx]
att = attempts[:, skills_idx]
# order students by their mean final mastery over the skills they practised
masked = np.where(att > 0, sub, np.nan)
with np.errstate(all="ignore"):
    score = np.nanmean(masked, axis=1)
score = np.where(np.isfinite(score), score, np.nanmean(sub, axis=1))
order = np.argsort(score, kind="stable")
if n_show < S:          # an even sample over the whole range, weakest to strongest
    order = order[np.linspace(0, S - 1, n_show).round().astype(int)]
st.caption(f"Columns: {len(order):,} of {S:,} students, weakest (left) to strongest (right) by mean "
           "final mastery over the skills they practised. Cells: mastery after the student's last step.")
st.plotly_chart(class_heatmap(sub[order], [ids[i] for i in order], [ylab_all[k] for k in skills_idx]),
                key="cls_heat")

# ---- distribution -----------------------------------------------------------------------
st.subheader("Mastery distribution per skill")
only_pr = st.checkbox("Only students who practised the skill", value=True, key="cls_only_pr")
st.plotly_chart(distribution_figure(final[:, skills_idx], attempts[:, skills_idx],
                                    [ylab_all[k] for k in skills_idx], only_practised=only_pr),
                key="cls_dist")

# ---- weakest students -------------------------------------------------------------------
st.subheader("Students weakest on a skill")
w1, w2 = st.columns([3, 1])
with np.errstate(all="ignore"):
    spread = np.array([np.nanstd(np.where(attempts[:, k] > 0, final[:, k], np.nan)) for k in used])
default_skill = int(used[int(np.nanargmax(spread))]) if np.isfinite(spread).any() else int(used[0])
if st.session_state.get("cls_skill") not in [int(k) for k in used]:
    st.session_state["cls_skill"] = default_skill
skill = w1.selectbox("Skill (first shown: the one where students differ most)", [int(k) for k in used],
                     format_func=lambda k: ylab_all[k], key="cls_skill")
n_weak = w2.number_input("How many", 1, 100, 10, key="cls_nweak")
weak = derived.weakest(key, scored, int(skill), int(n_weak))
if weak.empty:
    st.caption("Nobody practised this skill.")
else:
    st.caption("Each link opens the student on the Students page (the run and student are in the link's "
               "URL, so it can be shared).")
    hdr = st.columns([2, 2, 1, 1, 1])
    for col, text in zip(hdr, ("student", "final mastery", "attempts", "accuracy", "steps")):
        col.markdown(f"**{text}**")
    for _, row in weak.iterrows():
        cols = st.columns([2, 2, 1, 1, 1])
        student_link(cols[0], str(row["student"]))
        cols[1].progress(float(np.clip(row["final mastery"], 0, 1)), text=fmt(row["final mastery"], 3))
        cols[2].markdown(str(int(row["attempts"])))
        cols[3].markdown(fmt(row["accuracy"], 2))
        cols[4].markdown(str(int(row["steps"])))
