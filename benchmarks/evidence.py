#!/usr/bin/env python
"""The evidence commands, measured: the paired bootstrap of `cmkt compare` and the kt-audit round trip.

    python benchmarks/evidence.py --runs runs/A runs/B --data ../shared/data/assist2009
    python benchmarks/evidence.py --quick        # seconds: synthetic ASSIST-sized trajectories, bootstrap only

With --runs: scores both runs on --data (test split), times the bootstrap of B - A (AUC and mastery
AUC, 1,000 rounds), then exports B with `--format kt-audit` (every split), runs `kt-audit run` on
the file and reports its verdict, its test AUC beside `validate`'s, and its cheap baseline. With
--quick: two synthetic models over S students and about S * 30 steps (--students, default 4000),
bootstrap timing only. Prints one JSON object (and writes it to --out when given).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic(students: int, seed: int, noise: float):
    from cmkt.analysis.scoring import Trajectories
    d = np.random.default_rng(0)
    lengths = d.integers(5, 56, students)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    N, C = int(offsets[-1]), 100
    skills = d.integers(0, C, N)
    y = (d.random(N) < 0.65).astype(np.int64)
    rng = np.random.default_rng(seed)
    p = (1 / (1 + np.exp(-((y - 0.5) + rng.normal(0, noise, N))))).astype(np.float32)
    m = rng.random((N, C), dtype=np.float32)
    return Trajectories([f"u{i}" for i in range(students)], offsets, skills, y, p, m, m, "original")


def time_bootstrap(a, b, rounds: int) -> dict:
    from cmkt.analysis.bootstrap import compare_trajectories
    t = time.perf_counter()
    out = compare_trajectories(a, b, rounds=rounds)
    return {"seconds": round(time.perf_counter() - t, 3), "n_students": out["auc"]["n_students"],
            "n_steps": out["auc"]["n_steps"], "rounds": rounds,
            **{m: {k: out[m][k] for k in ("a", "b", "diff", "low", "high", "verdict")} for m in out}}


def audit(run: str, data: str, workdir: Path) -> dict:
    from cmkt.runs.audit import export_kt_audit
    from cmkt.runs.evaluate import score_checkpoint
    exe = shutil.which("kt-audit") or str(Path(sys.executable).parent / "kt-audit")
    csv = workdir / "preds.csv"
    t = time.perf_counter()
    done = export_kt_audit(run, data, csv)
    export_s = time.perf_counter() - t
    t = time.perf_counter()
    proc = subprocess.run([exe, "run", str(csv), "--out", str(workdir / "report")], capture_output=True, text=True)
    audit_s = time.perf_counter() - t
    rep = json.loads((workdir / "report" / "report.json").read_text()) if proc.returncode in (0, 1) else {}
    auc = score_checkpoint(run, data).metrics["auc"]
    return {"exit": proc.returncode, "stdout": proc.stdout.strip(), "verdict": rep.get("verdict"),
            "rows": done["rows"], "splits": done["splits"], "validate_auc": auc,
            "kt_audit_test_auc": rep.get("metrics", {}).get("test", {}).get("auc"),
            "baselines": rep.get("baselines"), "export_seconds": round(export_s, 2),
            "kt_audit_seconds": round(audit_s, 2),
            "findings": [(f["severity"], f["check"], f["message"]) for f in rep.get("findings", [])]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs=2, metavar=("A", "B"))
    ap.add_argument("--data")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--students", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    if a.quick:
        res = {"bootstrap": time_bootstrap(synthetic(a.students, 1, 1.0), synthetic(a.students, 2, 0.9), a.rounds)}
    elif a.runs and a.data:
        from cmkt.runs.evaluate import score_checkpoint
        ta, tb = (score_checkpoint(r, a.data).traj for r in a.runs)
        res = {"data": a.data, "runs": a.runs, "bootstrap": time_bootstrap(ta, tb, a.rounds)}
        with tempfile.TemporaryDirectory() as tmp:
            res["kt_audit"] = audit(a.runs[1], a.data, Path(tmp))
    else:
        ap.error("give --quick, or --runs A B with --data")
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
