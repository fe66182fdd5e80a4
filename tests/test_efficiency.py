"""Accuracy per second (dashboard/efficiency.py and the Runs page): every finished run's test AUC
against its training seconds, read from the run folders."""
import json

import pytest

from cmkt.runs.jobs import run_info
from dashboard.efficiency import efficiency_figure, efficiency_frame
from tests.test_app_pages import DEMO, figures, no_exception

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _Entry:
    def __init__(self, info):
        self.info, self.name, self.mode = info, info.name, info.mode


def test_every_finished_demo_run_is_a_point_with_its_own_results():
    infos = [run_info(p) for p in sorted(DEMO.iterdir()) if (p / "results.json").exists()]
    df = efficiency_frame([_Entry(i) for i in infos])
    assert set(df["kind"]) == {"cumulative", "original", "dkt", "bkt", "pfa"}
    for _, row in df.iterrows():
        res = json.loads((DEMO / row["run"] / "results.json").read_text())
        assert row["test AUC"] == pytest.approx(res["test"]["auc"])
        assert row["train seconds"] == pytest.approx(max(res["train_seconds"], 0.1))
    fig = efficiency_figure(df)
    assert fig.layout.xaxis.type == "log"
    assert sum(len(t.x) for t in fig.data) == len(df)


def test_unfinished_runs_and_runs_without_a_test_split_are_left_out(dash_runs, dash_copy_run):
    running = dash_copy_run(dash_runs, "cumulative", "running", state="running")
    (running / "results.json").unlink(missing_ok=True)
    assert efficiency_frame([_Entry(run_info(running))]).empty


def test_the_runs_page_draws_the_chart_from_the_run_folders(dash_app, dash_runs, dash_copy_run):
    dash_copy_run(dash_runs, "dkt", "mine")
    at = dash_app("runs")
    no_exception(at)
    scatter = [f for f in figures(at) if f["layout"].get("xaxis", {}).get("type") == "log"]
    assert scatter, "no accuracy-per-second chart"
    names = {n for t in scatter[0]["data"] for n in (t.get("hovertext") or [])}
    assert "mine" in names and "demo-cumulative" in names
