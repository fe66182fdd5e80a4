"""The dashboard with the classic baselines (DKT, BKT, PFA): the demo runs on every page, the
Consistency page's default set and captions, the Train page's model choice, and one browser
test of the Consistency page (headless Chromium; screenshot to $CMKT_SCREENSHOTS or
/tmp/base-shots)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cmkt.analysis.metrics import VIOLATION_KEYS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"
KINDS = ("dkt", "bkt", "pfa")
COLUMNS = ["demo-original (original)", "demo-cumulative (cumulative)", "demo-dkt (dkt)", "demo-bkt (bkt)",
           "demo-pfa (pfa)"]


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def errors(at):
    return [e.value for e in at.error]


def test_demo_has_every_baseline():
    for k in KINDS:
        cfg = json.loads((DEMO / f"demo-{k}" / "config.json").read_text())
        assert cfg["model"]["kind"] == k and cfg["train"]["data"] == "sim" and cfg.get("pair") is None
        assert len((DEMO / f"demo-{k}" / "metrics.jsonl").read_text().splitlines()) >= 1


def test_consistency_shows_a_column_per_model_with_what_each_guarantees(dash_app):
    at = dash_app("consistency")
    no_exception(at)
    assert not errors(at)
    df = at.table[0].value
    assert [c for c in df.columns if c != "what it measures"] == COLUMNS
    for k in VIOLATION_KEYS:
        assert df.loc[k, "demo-cumulative (cumulative)"] == 0
    for col in COLUMNS[2:]:
        assert df.loc["bounds_violation_rate", col] == 0              # every state is a probability
        assert df.loc["monotonicity_violation_rate", col] > 0         # none of them is monotone
        assert df.loc["auc", col] > 0.6
    assert df.loc["monotonicity_violation_rate", "demo-dkt (dkt)"] > df.loc["monotonicity_violation_rate", "demo-bkt (bkt)"]
    text = " ".join(c.value for c in at.caption)
    assert "**bkt**: bounded but not monotone (a wrong answer lowers P(learned))" in text
    assert "**dkt**: not monotone" in text and "**cumulative**: bounded and monotone" in text
    assert "**pfa**: bounded but not monotone" in text


def test_consistency_default_follows_the_newest_runs_data(dash_app, dash_runs, dash_copy_run):
    """A run under runs/ on other data: the default set is the kinds trained on that data."""
    run = dash_copy_run(dash_runs, "bkt", name="mine-bkt")
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["data"] = "sim:students=300,skills=12"
    cfg["created"] = "2999-01-01T00:00:00+00:00"
    (run / "config.json").write_text(json.dumps(cfg))
    at = dash_app("consistency")
    no_exception(at)
    assert at.multiselect(key="con_pick").value == ["runs/mine-bkt"]


@pytest.mark.parametrize("kind", KINDS)
def test_students_class_and_compare_pages_work_with_each_baseline(dash_app, kind):
    at = dash_app("students", {"run": f"demo/demo-{kind}", "student": "T0005"})
    no_exception(at)
    assert not errors(at)
    assert any(f"Mastery of T0005 · demo-{kind} ({kind})" in h.value for h in at.subheader)
    at = dash_app("class", {"run": f"demo/demo-{kind}"})
    no_exception(at)
    assert not errors(at)
    at = dash_app("compare")
    at.multiselect(key="cmp_pick").set_value(["demo/demo-cumulative", f"demo/demo-{kind}"]).run()
    no_exception(at)
    assert list(at.dataframe[0].value.columns) == ["demo-cumulative (cumulative)", f"demo-{kind} ({kind})"]


def test_runs_page_lists_the_baselines(dash_app):
    at = dash_app("runs")
    no_exception(at)
    df = at.dataframe[0].value
    modes = dict(zip(df["run"], df["mode"]))
    for k in KINDS:
        assert modes[f"demo-{k}"] == k


def test_train_page_starts_a_bkt_run(dash_app, dash_runs):
    from cmkt.runs.jobs import cancel_run, wait_for
    at = dash_app("train")
    assert {"DKT (LSTM)", "BKT", "PFA"} <= set(at.radio(key="tr_mode").options)
    at.radio(key="tr_source").set_value("sim").run()
    at.number_input(key="tr_sim_students").set_value(60).run()
    at.radio(key="tr_mode").set_value("bkt").run()
    assert any("BKT: Bayesian Knowledge Tracing" in c.value for c in at.caption)
    at.text_input(key="tr_name").set_value("page-bkt")
    at.button(key="tr_start").click().run()
    no_exception(at)
    assert not errors(at)
    run = dash_runs / "page-bkt"
    assert json.loads((run / "config.json").read_text())["model"]["kind"] == "bkt"
    try:
        status = wait_for(run, timeout=150)
    finally:
        cancel_run(run, wait=5)
    assert status["state"] == "finished", status
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


# ---- one browser test ----------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (/usr/bin/chromium)")
def test_browser_consistency_with_every_demo_model(dash_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _ = dash_server
    shots = Path(os.environ.get("CMKT_SCREENSHOTS") or "/tmp/base-shots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(url + "/consistency")
            page.wait_for_selector('h1:has-text("Consistency")')
            table = page.locator('[data-testid="stTable"]')
            table.wait_for()
            page.wait_for_timeout(300)
            page.wait_for_selector(IDLE)
            text = table.inner_text()
            for col in COLUMNS:
                assert col in text, col
            assert page.locator('[data-testid="stException"]').count() == 0
            captions = " ".join(page.locator('[data-testid="stCaptionContainer"]').all_inner_texts())
            assert "a wrong answer lowers P(learned)" in captions
            h = page.evaluate("() => { const e = document.querySelector('[data-testid=\"stMainBlockContainer\"]');"
                              " return e ? e.scrollHeight : 1000; }")
            page.set_viewport_size({"width": 1500, "height": min(int(h) + 150, 8000)})
            page.wait_for_timeout(800)
            page.screenshot(path=str(shots / "consistency.png"), full_page=True)
        finally:
            browser.close()
