"""The demo pair's stored results are what its checkpoint gives: results.json's test metrics
equal the metrics recomputed from best.safetensors on the run's own data and the test split."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmkt.runs.evaluate import score_checkpoint

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"
RUNS = sorted(p.name for p in DEMO.glob("demo-*") if (p / "results.json").exists())


def test_there_are_demo_runs():
    assert {"demo-original", "demo-cumulative"} <= set(RUNS)


@pytest.mark.parametrize("run", RUNS)
def test_demo_results_equal_metrics_recomputed_from_its_checkpoint(run):
    results = json.loads((DEMO / run / "results.json").read_text())
    stored = results["test"]
    got = score_checkpoint(DEMO / run, results["data"], "test").metrics
    counts = {k: v for k, v in stored.items() if k.startswith("n_")}
    assert counts == {k: got[k] for k in counts}
    diffs = {}
    for k, v in stored.items():
        if k in counts:
            continue
        if v is None or got.get(k) is None:
            if v is not got.get(k):
                diffs[k] = (v, got.get(k))
        elif abs(got[k] - v) > 1e-4:          # float rounding across machines stays far below this
            diffs[k] = (round(v, 4), round(got[k], 4))
    assert not diffs, f"{run}: stored results.json vs recomputed (stored, now): {diffs}"
