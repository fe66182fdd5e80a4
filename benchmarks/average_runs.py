"""What averaging already-trained runs would give: score each run on the same data, then score
the mean of their predictions and mastery (each long student's windows chained per run).

    python benchmarks/average_runs.py --data ../shared/data/assist2009 RUN RUN RUN

Prints each run's test AUC and mastery AUC, then the average's metrics (the mean of monotone,
bounded mastery curves is monotone and bounded, so the violations stay 0). A probe for
`members` (an ensemble trained side by side, whose windows share the mean mastery): see
docs/RESULTS.md, "An ensemble of three".
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402,F401  (puts the repository on sys.path)
from cmkt.runs.evaluate import score_checkpoint  # noqa: E402
from cmkt.analysis.metrics import compute_metrics  # noqa: E402

SHOWN = ("auc", "mastery_auc", "mastery_saturation_rate", "prediction_performance_corr",
         "mastery_performance_corr", "monotonicity_violation_rate", "negative_gain_rate", "bounds_violation_rate")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("runs", nargs="+", help="run folders (or checkpoints) trained on the same data")
    p.add_argument("--data", required=True, help="the data to score (a folder's test split, a file, or sim)")
    p.add_argument("--split", default="test")
    a = p.parse_args(argv)
    if len(a.runs) < 2:
        p.error("give at least two runs to average")
    trajs, each = [], []
    for run in a.runs:
        t = score_checkpoint(run, a.data, a.split).traj
        if trajs and (len(t.probs) != len(trajs[0].probs) or not np.array_equal(t.skills, trajs[0].skills)):
            p.error(f"{run}: scored different steps than {a.runs[0]} (not the same data and skills)")
        m = compute_metrics(t)
        each.append({"run": str(run), **{k: m.get(k) for k in SHOWN}})
        print(f"{run}: test AUC {m['auc']:.4f}, mastery AUC {m['mastery_auc']:.4f}", flush=True)
        trajs.append(t)
    mean = dataclasses.replace(trajs[0], probs=np.mean([t.probs for t in trajs], 0),
                               mastery=np.mean([t.mastery for t in trajs], 0),
                               gains=np.mean([t.gains for t in trajs], 0), parts=None)
    m = compute_metrics(mean)
    avg = {k: m.get(k) for k in SHOWN}
    print(f"average of {len(trajs)}: test AUC {m['auc']:.4f}, mastery AUC {m['mastery_auc']:.4f}, "
          f"saturation {100 * m['mastery_saturation_rate']:.2f}%, violations "
          f"{m['monotonicity_violation_rate']} / {m['negative_gain_rate']} / {m['bounds_violation_rate']}")
    print(json.dumps({"runs": each, "average": avg}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
