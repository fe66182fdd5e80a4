"""AppTest: the educator's view on the Students and Class pages (demo assets, no browser)."""
from __future__ import annotations

from pathlib import Path

import pytest

from cmkt.educator.classview import skills_table, students_below
from cmkt.runs.evaluate import score_checkpoint
from cmkt.educator.practice import LEVEL_LEGEND, SECURE, practise_next, skill_rows, summary_text

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def demo_scored():
    return score_checkpoint(DEMO / "demo-cumulative", "sim", "test")


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def buttons(at) -> dict:
    return {b.proto.label: b for b in at.get("download_button")}


def test_students_practise_next_legend_report_and_howto(dash_app, demo_scored):
    at = dash_app("students", {"run": "demo/demo-cumulative", "student": "T0005"})
    no_exception(at)
    assert [e.label for e in at.expander][0] == "How to read this page"
    text = " ".join(m.value for m in at.markdown)
    arr = demo_scored.traj.student(demo_scored.data.index_of("T0005"))
    nxt = practise_next(arr, demo_scored.skill_names, demo_scored.skill_labels)
    assert at.get("subheader") and "Practise next" in [h.value for h in at.subheader]
    for i, s in enumerate(nxt, 1):
        assert f"{i}. **{s.skill}**" in text and s.reason in text
    assert any(LEVEL_LEGEND in c.value for c in at.caption)
    assert summary_text(skill_rows(arr, demo_scored.skill_names, demo_scored.skill_labels)) in text
    assert "Download report (HTML)" in buttons(at)
    assert "Download this trajectory (CSV)" in buttons(at)


def test_class_skills_table_students_below_and_report(dash_app, demo_scored):
    at = dash_app("class")
    no_exception(at)
    assert [e.label for e in at.expander][0] == "How to read this page"
    assert "Download class report (HTML)" in buttons(at)
    expected = skills_table(demo_scored.traj, demo_scored.skill_names, demo_scored.skill_labels)
    table = at.dataframe[0].value
    assert list(table["skill"]) == list(expected["skill"])          # named skills, needs attention first
    assert {"mean mastery", "level", "share below", "attempts", "accuracy"} <= set(table.columns)
    assert any(LEVEL_LEGEND in c.value for c in at.caption)
    # the first skill is picked; its students below the threshold are links to the Students page
    top = int(expected["skill_index"][0])
    assert at.selectbox(key="cls_att_skill").value == top
    needy = list(students_below(demo_scored.traj, top)["student"])
    links = [l for l in at.get("page_link") if l.proto.page == "students"]   # noqa: E741
    assert [l.proto.label for l in links[:min(10, len(needy))]] == needy[:10]
    assert len(links) == min(10, len(needy)) + 10                              # + the weakest section
    assert "run=demo%2Fdemo-cumulative" in links[0].proto.query_string
    # a stricter level and another skill: the list follows
    at.radio(key="cls_thr").set_value(SECURE).run()
    second = skills_table(demo_scored.traj, demo_scored.skill_names, demo_scored.skill_labels, SECURE)
    pick = int(second["skill_index"][1])
    at.selectbox(key="cls_att_skill").set_value(pick).run()
    no_exception(at)
    needy = list(students_below(demo_scored.traj, pick, SECURE)["student"])
    links = [l for l in at.get("page_link") if l.proto.page == "students"]   # noqa: E741
    shown = [l.proto.label for l in links[:min(10, len(needy))]]
    assert shown == needy[:10] and len(needy) > 10
