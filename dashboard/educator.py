"""The educator's view on the Students and Class pages: how to read the page, what to practise
next, mastery levels, the skills that need attention and the HTML reports to download."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from cmkt.educator.classview import skills_table, students_below
from cmkt.educator.practice import (DEVELOPING, LEVEL_COLORS, LEVEL_LEGEND, SECURE, below_words, practise_next,
                           skill_rows, summary_text)
from cmkt.educator.report import class_report, student_report

from . import derived

BADGE = {"not yet": "red", "developing": "orange", "secure": "green"}
THRESHOLDS = (DEVELOPING, SECURE)


def badge(lv: str) -> str:
    """A level as a coloured Streamlit markdown badge."""
    return f":{BADGE.get(lv, 'gray')}-badge[{lv}]"


def howto_students() -> None:
    with st.expander("How to read this page", icon=":material/help:"):
        st.markdown(
            "- **Mastery** is the model's estimate, from 0 to 1, of how well the student knows a skill "
            "after each answer. " + LEVEL_LEGEND + "\n"
            "- **The mastery chart**: one line per skill; a green circle is a correct answer, a red cross a "
            "wrong one, on the line of the skill answered.\n"
            "- **Learning gains**: how much each answer moved each skill (blue up, red down).\n"
            "- **In words** and **Practise next** (below the per-skill summary): the strongest and weakest "
            "skills and every skill's level; three skills, each with the reason it was "
            "picked. Skills not yet secure where practice has paid off come first.\n"
            "- **Download report**: one self-contained HTML page (works offline, prints on A4) to hand to "
            "the student or a colleague.")


def student_section(scored, student: str, arr: dict, file_stem: str) -> None:
    """The student in words, practise next, the level legend and the report download."""
    rows = skill_rows(arr, scored.skill_names, scored.skill_labels)
    st.subheader("In words")
    st.markdown(summary_text(rows) + "  \n" + "  ·  ".join(
        f"{r.skill} {badge(r.level)}" for r in rows.sort_values("mastery").itertuples()))
    st.subheader("Practise next")
    nxt = practise_next(arr, scored.skill_names, scored.skill_labels)
    if not nxt:
        st.caption("No practice yet.")
    for i, s in enumerate(nxt, 1):
        st.markdown(f"{i}. **{s.skill}** {badge(s.level)} — {s.reason}")
    st.caption("Rule: skills not yet secure where practice has raised mastery come first (most gained per "
               "attempt first); then not-yet-secure skills where it has not (lowest first); then secure ones. "
               + LEVEL_LEGEND)
    st.download_button("Download report (HTML)", lambda: student_report(scored, student),
                       file_name=f"{file_stem}-{student}-report.html", mime="text/html",
                       icon=":material/description:", on_click="ignore", key="stu_report",
                       help="A self-contained page (no network needed) that prints on A4: summary, "
                            "practise next, mastery curves and the per-skill table.")


def howto_class() -> None:
    with st.expander("How to read this page", icon=":material/help:"):
        st.markdown(
            "- **Skills that need attention**: one row per skill, the largest share of students below the "
            "chosen level first. Click a row (or pick the skill below it) to list those students; each "
            "name opens the student on the Students page.\n"
            "- **Mastery** is the model's estimate, from 0 to 1, of how well a skill is known after the "
            "student's last answer. " + LEVEL_LEGEND + "\n"
            "- **Heatmap and distribution**: every student's final mastery of every skill, and its spread. "
            "In a large class the heatmap shows an even sample of the students (weakest to strongest); "
            "the table and the distribution count every student.\n"
            "- **Lists** show at most 200 students; **Download all as CSV** gives every student below the "
            "level on the chosen skill.\n"
            "- **Download class report**: the skills table and the heatmap as one HTML page (works "
            "offline, prints on A4).")


@st.cache_data(max_entries=32, show_spinner=False)
def attention_table(key: tuple, _scored, threshold: float) -> pd.DataFrame:
    return skills_table(_scored.traj, _scored.skill_names, _scored.skill_labels, threshold,
                        cm=derived.class_matrices(key, _scored))


@st.cache_data(max_entries=64, show_spinner=False)
def below(key: tuple, _scored, skill: int, threshold: float) -> pd.DataFrame:
    return students_below(_scored.traj, skill, threshold, cm=derived.class_matrices(key, _scored))


def pick_threshold() -> float:
    return st.radio("Needs help means final mastery", THRESHOLDS, format_func=below_words,
                    horizontal=True, key="cls_thr")


def skills_attention(table: pd.DataFrame) -> int:
    """The skills table; clicking a row picks that skill. Returns the picked skill index."""
    order = [int(k) for k in table["skill_index"]]
    names = dict(zip(order, table["skill"]))

    def picked():
        rows = st.session_state["cls_att"]["selection"]["rows"]
        if rows:
            st.session_state["cls_att_skill"] = order[rows[0]]

    view = table.drop(columns=["skill_index"])
    view[["share below", "accuracy"]] *= 100
    styled = view.style.map(lambda v: f"color: {LEVEL_COLORS.get(v, 'inherit')}; font-weight: 600",
                            subset=["level"])
    st.dataframe(styled, hide_index=True, width="stretch", on_select=picked, selection_mode="single-row",
                 key="cls_att", height=min(38 + 35 * len(view), 600), column_config={
                     "mean mastery": st.column_config.NumberColumn("mean final mastery", format="%.2f"),
                     "share below": st.column_config.ProgressColumn(format="%.0f%%", min_value=0, max_value=100),
                     "below": st.column_config.NumberColumn("students below"),
                     "accuracy": st.column_config.NumberColumn(format="%.0f%%")})
    st.caption(LEVEL_LEGEND)
    if st.session_state.get("cls_att_skill") not in order:
        st.session_state["cls_att_skill"] = order[0]
    return st.selectbox("Skill", order, format_func=names.get, key="cls_att_skill")


def class_download(scored, threshold: float, file_stem: str) -> None:
    """The class report, made only when the button is clicked (it samples the heatmap: a
    class of 100,000 students gives a report of a few MB made in a couple of seconds)."""
    st.download_button("Download class report (HTML)", lambda: class_report(scored, threshold),
                       file_name=f"{file_stem}-class-report.html", mime="text/html",
                       icon=":material/description:", on_click="ignore", key="cls_report",
                       help="The skills table and the final-mastery heatmap as one self-contained page "
                            "(no network needed) that prints on A4. The heatmap shows an even sample of "
                            "at most 300 students; the table counts every student.")


def below_download(needy: pd.DataFrame, skill_name: str, threshold: float, file_stem: str) -> None:
    """Every student below the level on one skill as CSV (the page lists only the first few),
    made only when the button is clicked."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(skill_name))[:40]
    st.download_button(f"Download all {len(needy):,} as CSV", lambda: needy.to_csv(index=False).encode(),
                       file_name=f"{file_stem}-{safe}-below-{threshold:g}.csv", mime="text/csv",
                       icon=":material/download:", on_click="ignore", key="cls_below_csv",
                       help=f"Every student {below_words(threshold)} on {skill_name}, weakest first: final "
                            "mastery, level, attempts, correct answers and accuracy.")


def level_progress(col, value: float, lv: str) -> None:
    col.progress(float(np.clip(value, 0, 1)), text=f"{value:.2f} · {lv}")
