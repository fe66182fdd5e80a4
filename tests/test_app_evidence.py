"""AppTest: the reference's numbers on the Consistency page and the differences with intervals on
the Compare page (demo assets, no training)."""
from __future__ import annotations

from pathlib import Path

import pytest

from cmkt.analysis.bootstrap import compare_trajectories
from cmkt.analysis.reference_metrics import REFERENCE_KEYS, reference_metrics
from cmkt.runs.evaluate import score_checkpoint

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def test_consistency_shows_the_reference_numbers_for_every_model(dash_app):
    at = dash_app("consistency")
    no_exception(at)
    df = at.table[0].value
    cols = [c for c in df.columns if c != "what it measures"]
    assert len(cols) >= 2
    for k in REFERENCE_KEYS:                          # labelled rows beside cmkt's own definitions
        assert f"reference: {k}" in df.index
        assert df.loc[f"reference: {k}", "what it measures"].startswith("reference's definition")
    assert "mastery_performance_corr" in df.index
    for col in ("demo-cumulative (cumulative)", "demo-original (original)"):
        ref = reference_metrics(score_checkpoint(DEMO / col.split(" ")[0], "sim", "test").traj)
        for k in REFERENCE_KEYS:
            v = df.loc[f"reference: {k}", col]
            assert (v is None) if ref[k] is None else v == pytest.approx(ref[k]), (col, k)
    assert df.loc["reference: negative_gain_rate", "demo-cumulative (cumulative)"] == 0
    text = " ".join(c.value for c in at.caption)
    assert "validate_cumulative_mastery.py" in text
    assert "averages mastery and gains over all concepts" in text
    assert "pairs the mastery of the skill about to be answered with that answer" in text
    assert "near 0 or negative" in text


def test_compare_shows_the_difference_with_its_interval(dash_app):
    at = dash_app("compare")
    no_exception(at)
    assert list(at.dataframe[0].value.columns) == ["demo-original (original)", "demo-cumulative (cumulative)"]
    df = at.dataframe[1].value
    assert list(df["metric"]) == ["auc", "mastery_auc"]
    a = score_checkpoint(DEMO / "demo-original", "sim", "test").traj
    b = score_checkpoint(DEMO / "demo-cumulative", "sim", "test").traj
    want = compare_trajectories(a, b)
    for _, row in df.iterrows():
        w = want[row["metric"]]
        assert row["B - A"] == pytest.approx(w["diff"])
        assert row["95% interval"] == f"[{w['low']:+.4f}, {w['high']:+.4f}]"
        assert row["verdict"] == ("tie" if w["verdict"] == "tie" else
                                  f"{row['B'] if w['verdict'] == 'B ahead' else row['A']} ahead")
    assert any("paired bootstrap" in c.value for c in at.caption)


def test_compare_two_copies_is_a_tie(dash_app, dash_runs, dash_copy_run):
    dash_copy_run(dash_runs, "cumulative", name="twin-a")
    dash_copy_run(dash_runs, "cumulative", name="twin-b")
    at = dash_app("compare")
    at.multiselect(key="cmp_pick").set_value(["runs/twin-a", "runs/twin-b"]).run()
    no_exception(at)
    df = at.dataframe[1].value
    assert list(df["verdict"]) == ["tie", "tie"] and (df["B - A"] == 0).all()
    assert list(df["95% interval"]) == ["[+0.0000, +0.0000]"] * 2
