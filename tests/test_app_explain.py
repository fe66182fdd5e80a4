"""AppTest: every prediction explained on the Students page, the faithfulness trade-off on the
Consistency page, the new metrics in the Consistency table."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cmkt.runs.evaluate import score_checkpoint
from test_app_pages import DEMO, arr, errors, figures, no_exception

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def demo_scored():
    return score_checkpoint(DEMO / "demo-cumulative", "sim", "test")


def test_demo_pair_uses_the_mastery_predictor(demo_scored):
    assert demo_scored.meta["model_config"]["predictor"] == "mastery"
    assert demo_scored.traj.parts is not None


def test_students_page_explains_a_chosen_step(dash_app, demo_scored):
    at = dash_app("students", {"run": "demo/demo-cumulative", "student": "T0005"})
    no_exception(at)
    assert not errors(at)
    assert "Why this prediction?" in [h.value for h in at.subheader]
    i = demo_scored.data.index_of("T0005")
    sl = demo_scored.traj.rows(i)
    parts = demo_scored.traj.parts[sl]
    slider = at.slider(key="stu_step_T0005")
    assert slider.value == len(parts)                 # the last step by default
    slider.set_value(3).run()
    no_exception(at)
    text = " ".join(m.value for m in at.markdown)
    p3 = 1 / (1 + math.exp(-float(parts[2].sum())))
    assert f"P(correct) {p3:.2f} = mastery of" in text and "recent answers" in text
    fall = next(t for f in figures(at) for t in f["data"] if t["type"] == "waterfall")
    x = arr(fall["x"]).astype(float)
    np.testing.assert_allclose(x[:3], parts[2], atol=1e-3)        # mastery, difficulty, momentary
    assert x[3] == pytest.approx(float(parts[2].sum()), abs=1e-3)  # the total is the logit
    # hovering an answer shows the same three parts
    answers = [t for f in figures(at)[:1] for t in f["data"] if t.get("meta") == "answers"]
    assert all("logit = mastery" in t["hovertemplate"] for t in answers)


def test_students_page_says_when_a_model_cannot_explain(dash_app, dash_runs, tmp_path):
    from cmkt.runs import create_run, execute_run
    run = create_run(dash_runs, data="sim:students=30,skills=4", epochs=1, name="mlp-run",
                     overrides={"d_model": "16", "n_heads": "2", "d_ff": "16", "predictor": "mlp",
                                "base": "context"})
    execute_run(run)
    at = dash_app("students", {"run": "runs/mlp-run"})
    no_exception(at)
    text = " ".join(c.value for c in at.caption)
    assert "`mlp` predictor" in text
    assert not [t for f in figures(at) for t in f["data"] if t["type"] == "waterfall"]


def test_consistency_shows_new_metrics_and_the_tradeoff(dash_app):
    at = dash_app("consistency")
    no_exception(at)
    table = at.table[0].value
    for key in ("prediction_performance_corr", "mastery_auc", "mastery_saturation_rate", "n_nonfinite"):
        assert key in table.index
    assert "Faithfulness trade-off" in [h.value for h in at.subheader]
    shipped = json.loads((Path(DEMO).parent / "tradeoff.json").read_text())
    fig = next(f for f in figures(at) if any("mastery_auc" in (t.get("hovertemplate") or "") for t in f["data"]))
    measured = [t for t in fig["data"] if "mastery_auc" in t["hovertemplate"] and t["name"] == "assist2009"]
    assert sum(len(arr(t["x"])) for t in measured) == len(shipped["points"])
    # the finished runs with the mastery predictor are points too (here: the demo's cumulative run)
    assert any(t["name"] == "sim (runs here)" for t in fig["data"])


@pytest.mark.parametrize("predictor,bound,want", [("mastery", "0", ("mastery", 0.0)),
                                                  ("mastery", "unbounded", ("mastery", None)),
                                                  ("mlp", "unbounded", ("mlp", None))])
def test_train_page_sets_predictor_and_bound(dash_app, dash_runs, predictor, bound, want):
    from cmkt.runs.jobs import cancel_run
    from cmkt.runs import read_config
    at = dash_app("train")
    at.number_input(key="tr_sim_students").set_value(20)
    at.selectbox(key="tr_predictor").set_value(predictor).run()
    if predictor == "mastery":
        at.selectbox(key="tr_bound").set_value(bound).run()
    else:
        assert at.selectbox(key="tr_bound").disabled
    at.number_input(key="tr_epochs_quick").set_value(1)
    at.text_input(key="tr_name").set_value("picked")
    at.button(key="tr_start").click().run()
    no_exception(at)
    assert not errors(at)
    run = dash_runs / "picked"
    try:
        model = read_config(run)["model"]
    finally:
        cancel_run(run, wait=5)
    assert model["predictor"] == want[0]
    if want[0] == "mastery":
        assert model["momentary_bound"] == want[1]
