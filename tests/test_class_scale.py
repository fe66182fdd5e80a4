"""The Class page at scale (issue 11): vectorised class views equal a plain per-skill reference,
and the page renders a class of 100,000 students (synthetic trajectories, no model) with a
sampled heatmap, capped lists, only aggregates sent for the whole class, and each interactive
section in its own st.fragment, so a click reruns that section and not the page."""
from __future__ import annotations

import json
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from cmkt.educator import classview
from cmkt.runs.evaluate import Scored
from cmkt.educator.practice import DEVELOPING, SECURE, as_shown, level, skill_name
from cmkt.analysis.scoring import Trajectories

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ---- synthetic classes ------------------------------------------------------------------

def fake_traj(students: int, skills: int, steps: int, seed: int = 0, practised: int | None = None,
              empty: int = 0) -> Trajectories:
    """Random trajectories: about `steps` steps per student, each practising about `practised`
    skills (default a quarter of them), mastery uniform in [0, 1]. The first `empty` students
    have no step."""
    rng = np.random.default_rng(seed)
    practised = practised or max(1, skills // 4)
    lengths = rng.integers(max(1, steps // 2), steps + steps // 2 + 1, students)
    lengths[:empty] = 0
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    N = int(offsets[-1])
    row = np.repeat(np.arange(students), lengths)
    sk = ((rng.integers(0, skills, students)[row] + rng.integers(0, practised, N)) % skills).astype(np.int64)
    resp = (rng.random(N) < 0.6).astype(np.int64)
    mastery = rng.random((N, skills), dtype=np.float32)
    gains = np.broadcast_to(np.zeros(skills, np.float32), (N, skills))     # not read here
    return Trajectories([f"S{i:06d}" for i in range(students)], offsets, sk, resp,
                        np.full(N, 0.5, np.float32), mastery, gains, "cumulative")


def fake_scored(traj: Trajectories) -> Scored:
    C = traj.num_skills
    index = {s: i for i, s in enumerate(traj.student_ids)}
    data = SimpleNamespace(notes=[], source="synthetic", index_of=index.__getitem__,
                           student_ids=traj.student_ids)
    return Scored(traj, data, {"run": "synthetic", "model_config": {"mode": "cumulative"}},
                  [str(k) for k in range(C)], [f"skill {k}" for k in range(C)])


# ---- a plain reference: loops per skill and per student ----------------------------------

def ref_matrices(traj):
    S, C = len(traj.student_ids), traj.num_skills
    final = np.full((S, C), np.nan)
    attempts = np.zeros((S, C), dtype=np.int64)
    correct = np.zeros((S, C), dtype=np.int64)
    for i in range(S):
        sl = traj.rows(i)
        if sl.stop > sl.start:
            final[i] = traj.mastery[sl.stop - 1]
        np.add.at(attempts[i], traj.skills[sl], 1)
        np.add.at(correct[i], traj.skills[sl], traj.responses[sl])
    return {"final": final, "attempts": attempts, "correct": correct}


def ref_skills_table(cm, names, labels, threshold):
    att, fin = cm["attempts"], cm["final"]
    rows = []
    for k in range(att.shape[1]):
        who = att[:, k] > 0
        if not who.any():
            continue
        f = fin[who, k]
        low = as_shown(f) < threshold
        rows.append({"skill": skill_name(k, names, labels), "skill_index": k, "students": int(who.sum()),
                     "mean mastery": float(np.mean(f)), "level": level(float(np.mean(f))),
                     "share below": float(np.mean(low)), "below": int(low.sum()),
                     "attempts": int(att[:, k].sum()),
                     "accuracy": float(cm["correct"][:, k].sum() / att[:, k].sum())})
    return pd.DataFrame(rows).sort_values(["share below", "mean mastery", "skill_index"],
                                          ascending=[False, True, True], ignore_index=True)


def ref_quartiles(cm, k, only_practised):
    v = cm["final"][cm["attempts"][:, k] > 0, k] if only_practised else cm["final"][:, k]
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    iqr = q3 - q1
    return {"n": v.size, "mean": v.mean(), "q1": q1, "median": med, "q3": q3,
            "lowerfence": v[v >= q1 - 1.5 * iqr].min(), "upperfence": v[v <= q3 + 1.5 * iqr].max()}


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:Degrees of freedom")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_class_views_equal_a_plain_reference(seed):
    tr = fake_traj(300, 9, 6, seed=seed, practised=3, empty=4)
    tr.skills[tr.skills == 8] = 7                  # skill 8: nobody practised it
    tr.mastery[::7, 0] = 0.3996                    # shown as 0.40: not below "developing"
    names, labels = [f"n{k}" for k in range(9)], [str(k) for k in range(9)]
    cm, ref = classview.class_matrices(tr), ref_matrices(tr)
    for k in ("final", "attempts", "correct"):
        assert np.array_equal(cm[k], ref[k], equal_nan=True), k
    for thr in (DEVELOPING, SECURE):
        got = classview.skills_table(tr, names, labels, thr)
        pd.testing.assert_frame_equal(got, ref_skills_table(ref, names, labels, thr), check_dtype=False,
                                      rtol=1e-12)
        assert 8 not in set(got["skill_index"])
        for k in range(9):
            below = classview.students_below(tr, k, thr)
            fin, att = ref["final"][:, k], ref["attempts"][:, k]
            want = sorted((i for i in range(300) if att[i] > 0 and round(fin[i], 2) < thr),
                          key=lambda i: fin[i])                      # a stable sort: ties keep row order
            assert list(below["student"]) == [tr.student_ids[i] for i in want]
            assert list(below["level"]) == [level(fin[i]) for i in want]
    # the Class page's per-skill spread (was a Python loop of nanstd per skill)
    spread = classview.skill_spread(cm)
    with np.errstate(all="ignore"):
        want = [np.nanstd(np.where(ref["attempts"][:, k] > 0, ref["final"][:, k], np.nan)) for k in range(9)]
    assert np.allclose(spread, want, rtol=1e-12, equal_nan=True) and np.isnan(spread[8])
    # box-plot figures: exactly np.percentile's quartiles and the whisker ends
    for only in (True, False):
        q = classview.skill_quartiles(cm, only)
        assert len(q) == 9
        for k in range(9):
            r = ref_quartiles(ref, k, only)
            if r is None:
                assert q.loc[k, "n"] == 0 and np.isnan(q.loc[k, "median"])
                continue
            for f in ("n", "q1", "median", "q3", "lowerfence", "upperfence"):
                assert q.loc[k, f] == r[f], (k, f)
            assert q.loc[k, "mean"] == pytest.approx(r["mean"], rel=1e-12)
    # the heatmap's order: mean final mastery over the practised skills, weakest first, no step last
    with np.errstate(all="ignore"):
        score = np.nanmean(np.where(ref["attempts"] > 0, ref["final"], np.nan), axis=1)
    order = classview.student_order(cm)
    assert np.allclose(score[order][:-4], np.sort(score)[:-4], rtol=1e-12)
    assert set(order[-4:]) == {0, 1, 2, 3}
    sample = classview.even_sample(order, 10)
    assert len(sample) == 10 and sample[0] == order[0] and sample[-1] == order[-1]
    assert list(classview.even_sample(order, 1000)) == list(order)


def test_distribution_figure_sends_only_quartiles():
    from dashboard.charts import distribution_figure
    tr = fake_traj(400, 5, 8, seed=3)
    cm = classview.class_matrices(tr)
    fig = distribution_figure(cm["final"], cm["attempts"], [f"s{k}" for k in range(5)]).to_plotly_json()
    assert len(fig["data"]) == 5
    for k, box in enumerate(fig["data"]):
        assert "y" not in box                                # no per-student values
        r = ref_quartiles(ref_matrices(tr), k, True)
        assert box["median"][0] == r["median"] and box["lowerfence"][0] == r["lowerfence"]


# ---- the page at 100,000 students --------------------------------------------------------

S_BIG, C_BIG = 100_000, 50


@pytest.fixture(scope="module")
def big_scored():
    return fake_scored(fake_traj(S_BIG, C_BIG, 10, seed=11))


@pytest.fixture
def big_page(dash_app, big_scored, monkeypatch):
    """The Class page (not yet run) with the 100k-student class injected as the scored data."""
    import dashboard.state as state
    monkeypatch.setattr(state, "get_scored", lambda entry, data, split: (("synthetic-100k",), big_scored))
    at = dash_app("class", run=False)
    at.default_timeout = 300
    return at


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def figures(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def fragment_rerun(at, name: str):
    """Rerun only the fragment registered under `name`, as a click inside it does in the browser
    (AppTest.run always reruns the whole script). A browser session keeps its pages between
    runs; AppTest makes a new PagesManager per run, so it gets the pages of the last full run."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
    from streamlit.testing.v1 import app_test, local_script_runner
    ids = at._fragment_storage.resolve_target(name)     # raises when no fragment has that key
    pages = dict(at._registered_pages)

    class KeptPages(PagesManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._set_pages(dict(pages))

    with mock.patch.object(local_script_runner, "RerunData",
                           lambda **kw: RerunData(**kw, fragment_id_queue=list(ids))), \
            mock.patch.object(app_test, "PagesManager", KeptPages):
        at.run()
    return at


def test_class_page_renders_100k_students(big_page, big_scored):
    at = big_page.run()
    no_exception(at)
    assert {m.label: m.value for m in at.metric}["Students"] == "100,000"
    captions = [c.value for c in at.caption]
    assert any(c.startswith("An even sample of the class: 200 of 100,000 students") for c in captions), captions
    # the skills table: one row per skill, from every student
    cm = classview.class_matrices(big_scored.traj)
    want = classview.skills_table(big_scored.traj, big_scored.skill_names, big_scored.skill_labels, cm=cm)
    assert list(at.dataframe[0].value["skill"]) == list(want["skill"])
    # capped lists: 10 students below by default, at most 200 on the page; the rest as CSV
    top = int(want["skill_index"][0])
    below = classview.students_below(big_scored.traj, top, cm=cm)
    assert len(below) > 1000
    nb = [n for n in at.number_input if n.key.startswith("cls_nbelow_")][0]
    assert nb.value == 10 and nb.max <= 200
    links = [l.proto.label for l in at.get("page_link") if l.proto.page == "students"]   # noqa: E741
    assert links[:10] == list(below["student"][:10]) and len(links) == 20           # + the 10 weakest
    labels = [b.proto.label for b in at.get("download_button")]
    assert f"Download all {len(below):,} as CSV" in labels and "Download class report (HTML)" in labels
    # what reaches the browser: a sampled heatmap and quartiles, never a value per student
    heat, dist = figures(at)
    assert len(heat["data"][0]["x"]) == 200
    assert len(dist["data"]) == C_BIG and all("y" not in t for t in dist["data"])
    q = classview.skill_quartiles(cm)
    assert [t["median"][0] for t in dist["data"]] == list(q["median"])
    total = sum(len(el.proto.spec) for el in at.get("plotly_chart")) + sum(
        len(d.proto.arrow_data.data) for d in at.get("arrow_data_frame"))
    assert total < 1_000_000, total                     # well under a megabyte for 100,000 students
    # the most students the heatmap can show is 2,000
    assert at.slider(key="cls_n").max == 2000
    at.slider(key="cls_n").set_value(2000).run()
    no_exception(at)
    assert len(figures(at)[0]["data"][0]["x"]) == 2000
    assert any("2,000 of 100,000" in c.value for c in at.caption)


def test_a_click_reruns_only_its_section(big_page, big_scored):
    at = big_page.run()
    no_exception(at)
    runs = at.session_state["_cls_page_runs"]
    assert runs == 1
    # the level picker: only the "needs attention" fragment reruns, and its list follows
    at.radio(key="cls_thr").set_value(SECURE)
    fragment_rerun(at, "cls_attention")
    no_exception(at)
    assert at.session_state["_cls_page_runs"] == runs                  # the page body did not run
    assert any("not yet secure" in m.value for m in at.markdown)
    assert not at.get("plotly_chart")                                  # nothing else was redrawn
    # a full run (what AppTest does by default) does count
    at.run()
    no_exception(at)
    assert at.session_state["_cls_page_runs"] == runs + 1
    runs += 1
    # the heatmap slider: only the heatmap fragment
    at.slider(key="cls_n").set_value(500)
    fragment_rerun(at, "cls_heatmap")
    no_exception(at)
    assert at.session_state["_cls_page_runs"] == runs
    heat = figures(at)
    assert len(heat) == 1 and len(heat[0]["data"][0]["x"]) == 500
    at.run()
    runs += 1
    # the distribution checkbox: only the distribution fragment
    at.checkbox(key="cls_only_pr").set_value(False)
    fragment_rerun(at, "cls_distribution")
    no_exception(at)
    assert at.session_state["_cls_page_runs"] == runs
    dist = figures(at)
    assert len(dist) == 1 and all(t["type"] == "box" for t in dist[0]["data"])
    at.run()
    runs += 1
    # the weakest-students skill picker: only that fragment, its links follow the skill
    k = next(k for k in range(C_BIG) if k != at.selectbox(key="cls_skill").value)
    at.selectbox(key="cls_skill").set_value(k)
    fragment_rerun(at, "cls_weakest")
    no_exception(at)
    assert at.session_state["_cls_page_runs"] == runs
    assert at.selectbox(key="cls_skill").value == k
    weak = [l.proto.label for l in at.get("page_link") if l.proto.page == "students"]   # noqa: E741
    cm = classview.class_matrices(big_scored.traj)
    rows = np.nonzero(cm["attempts"][:, k] > 0)[0]
    want = rows[np.argsort(cm["final"][rows, k], kind="stable")][:10]
    assert weak == [big_scored.traj.student_ids[i] for i in want]
