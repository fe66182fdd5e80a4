"""Class: the skills that need attention and who needs help with each, final mastery of every
student on every skill, its spread per skill, and the students weakest on a chosen skill (each
student a link to the Students page); the class report to download.

Built for large classes (100,000 students): everything per skill is computed once per data set,
vectorised and cached (dashboard.derived); each interactive section is an st.fragment, so a click
in it reruns and redraws that section only; lists are capped (the full list is a CSV download)
and the heatmap is an even sample of at most 2,000 students: the browser never receives
per-student data for the whole class."""
from __future__ import annotations

import numpy as np
import streamlit as st

from cmkt.educator import classview
from cmkt.educator.practice import below_words
from dashboard import derived, educator
from dashboard.charts import class_heatmap, quartiles_figure, skill_label
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

# full runs of this page (a click inside a section below reruns only that section's fragment)
st.session_state["_cls_page_runs"] = st.session_state.get("_cls_page_runs", 0) + 1

final, attempts = cm["final"], cm["attempts"]
ids = cm["student_ids"]
S, C = final.shape
ylab_all = [skill_label(k, scored.skill_names, scored.skill_labels) for k in range(C)]
summary = derived.class_summaries(key, scored)
used = summary["used"]
if S == 0 or used.size == 0:
    st.warning("No interactions in this data set / split.")
    st.stop()

MAX_LISTED = 200          # the most students a list on this page shows (the rest: CSV download)
MAX_HEAT = 2000           # the most students (columns) the heatmap shows

m1, m2, m3 = st.columns(3)
m1.metric("Students", f"{S:,}")
m2.metric("Skills practised", f"{used.size} of {C}")
m3.metric("Interactions", f"{summary['interactions']:,}")

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
@st.fragment(key="cls_attention")
def attention_section() -> None:
    st.subheader("Skills that need attention")
    st.caption("Per skill, over the students who practised it: mean final mastery (and its level), the "
               "share of them below the chosen level, attempts and accuracy. Largest share below first.")
    threshold = educator.pick_threshold()
    table = educator.attention_table(key, scored, threshold)
    att_skill = educator.skills_attention(table)
    needy = educator.below(key, scored, int(att_skill), threshold)
    att_name = table.set_index("skill_index").loc[att_skill, "skill"]
    if needy.empty:
        st.caption(f"Nobody who practised {att_name} is {below_words(threshold)}.")
    else:
        b1, b2 = st.columns([3, 1], vertical_alignment="bottom")
        b1.markdown(f"**{len(needy):,} student{'s' * (len(needy) != 1)} {below_words(threshold)} on "
                    f"{att_name}**, weakest first (each opens the Students page):")
        top = min(len(needy), MAX_LISTED)
        n_list = int(b2.number_input("How many to list", 1, top, min(10, top), key=f"cls_nbelow_{top}",
                                     help=f"At most {MAX_LISTED} here; the CSV has them all."))
        hdr = st.columns([2, 2, 1, 1])
        for col, text in zip(hdr, ("student", "final mastery", "attempts", "accuracy")):
            col.markdown(f"**{text}**")
        for row in needy.head(n_list).to_dict("records"):
            cols = st.columns([2, 2, 1, 1])
            student_link(cols[0], row["student"])
            educator.level_progress(cols[1], row["final mastery"], row["level"])
            cols[2].markdown(f"{row['attempts']} ({row['correct']} correct)")
            cols[3].markdown(fmt(row["accuracy"], 2))
        if len(needy) > n_list:
            c1, c2 = st.columns([3, 1], vertical_alignment="center")
            c1.caption(f"… and {len(needy) - n_list:,} more.")
            with c2:
                educator.below_download(needy, att_name, threshold, entry.name)
    educator.class_download(scored, threshold, entry.name)


attention_section()

# ---- heatmap and distribution -------------------------------------------------------------
st.subheader("Final mastery: skills × students")
# this choice applies to both sections below, so it reruns the page (cheap: all of it is cached)
only_used = st.checkbox("Only skills someone practised (here and in the distribution)", value=True,
                        key="cls_used")
skills_idx = used if only_used else np.arange(C)


@st.fragment(key="cls_heatmap")
def heatmap_section(skills_idx: np.ndarray) -> None:
    max_n = int(min(S, MAX_HEAT))
    n_show = (st.slider("Students shown", min(10, S), max_n, min(200, max_n), key="cls_n",
                        help=f"An even sample of the class, weakest to strongest (at most {MAX_HEAT:,})")
              if S > 10 else S)
    # students ordered by their mean final mastery over the skills they practised (cached)
    order = classview.even_sample(summary["order"], int(n_show))
    if len(order) < S:
        st.caption(f"An even sample of the class: {len(order):,} of {S:,} students, from the weakest (left) "
                   "to the strongest (right) by mean final mastery over the skills they practised; every "
                   "student counts in the table above and the distribution below. Cells: mastery after "
                   "the student's last step.")
    else:
        st.caption(f"Columns: all {S:,} students, weakest (left) to strongest (right) by mean final mastery "
                   "over the skills they practised. Cells: mastery after the student's last step.")
    st.plotly_chart(class_heatmap(final[np.ix_(order, skills_idx)], [ids[i] for i in order],
                                  [ylab_all[k] for k in skills_idx]), key="cls_heat")


heatmap_section(skills_idx)


@st.fragment(key="cls_distribution")
def distribution_section(skills_idx: np.ndarray) -> None:
    st.subheader("Mastery distribution per skill")
    only_pr = st.checkbox("Only students who practised the skill", value=True, key="cls_only_pr")
    stats = derived.skill_quartiles(key, scored, bool(only_pr))      # quartiles only reach the browser
    st.plotly_chart(quartiles_figure(stats.iloc[skills_idx], [ylab_all[k] for k in skills_idx]),
                    key="cls_dist")


distribution_section(skills_idx)


# ---- weakest students -------------------------------------------------------------------
@st.fragment(key="cls_weakest")
def weakest_section() -> None:
    st.subheader("Students weakest on a skill")
    w1, w2 = st.columns([3, 1])
    spread = summary["spread"][used]
    default_skill = int(used[int(np.nanargmax(spread))]) if np.isfinite(spread).any() else int(used[0])
    choices = [int(k) for k in used]
    if st.session_state.get("cls_skill") not in choices:
        st.session_state["cls_skill"] = default_skill
    skill = w1.selectbox("Skill (first shown: the one where students differ most)", choices,
                         format_func=lambda k: ylab_all[k], key="cls_skill")
    n_weak = w2.number_input("How many", 1, 100, 10, key="cls_nweak")
    weak = derived.weakest(key, scored, int(skill), int(n_weak))
    if weak.empty:
        st.caption("Nobody practised this skill.")
        return
    st.caption("Each link opens the student on the Students page (the run and student are in the link's "
               "URL, so it can be shared).")
    hdr = st.columns([2, 2, 1, 1, 1])
    for col, text in zip(hdr, ("student", "final mastery", "attempts", "accuracy", "steps")):
        col.markdown(f"**{text}**")
    for row in weak.to_dict("records"):
        cols = st.columns([2, 2, 1, 1, 1])
        student_link(cols[0], str(row["student"]))
        cols[1].progress(float(np.clip(row["final mastery"], 0, 1)), text=fmt(row["final mastery"], 3))
        cols[2].markdown(str(int(row["attempts"])))
        cols[3].markdown(fmt(row["accuracy"], 2))
        cols[4].markdown(str(int(row["steps"])))


weakest_section()
