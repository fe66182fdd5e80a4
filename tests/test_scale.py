"""Smoke test: benchmarks/scale.py --quick runs end to end and writes its tables."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_scale_quick(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "scale.py"), "--quick", "--out", tmp_path],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "scale.json").read_text())
    assert res["read"]["parquet"]["interactions"] == res["read"]["csv"]["interactions"] > 50_000
    assert all(v["seconds"] > 0 and v["peak_gb"] > 0 for v in res["read"].values())
    assert [r["processes"] for r in res["train"]] == [1, 2]
    one, two = res["train"]
    assert one["train_interactions"] == two["train_interactions"] > 0 and two["interactions_per_s"] > 0
    assert abs(one["val_auc"] - two["val_auc"]) < 1e-4          # same global batch, same model
    assert res["score"]["interactions"] == res["read"]["parquet"]["interactions"]
    assert res["score"]["within_bound"]
    assert "gpu" in res and ("skipped" in res["gpu"] or res["gpu"]["train"])
    assert "Training throughput" in (tmp_path / "scale.md").read_text()
