"""Are a trained run's probabilities calibrated? Observed share of correct answers against the
predicted P(correct), per probability bin and per size of the momentary part.

    python benchmarks/calibration.py RUN --data ../shared/data/assist2009

Scores the run on the data (the test split of a folder), then over the steps after each
student's first prints, per bin:
- how many steps, the mean predicted P(correct), the observed share correct;
- `repeat`: the share of steps whose previous step (same student) has another skill and the
  same answer. ASSIST2009 logs one answer once per skill tag of a multi-skill problem, and a
  model that notices predicts those copies almost surely.
Also the expected calibration error (ECE: the step-weighted mean gap over the probability bins)
and the Brier score. Writes calibration.json and calibration.md under --out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (puts the repository on sys.path)
from cmkt.errors import CmktError  # noqa: E402

PROB_EDGES = (0.0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99, 1.0)
MOMENTARY_EDGES = (-np.inf, -6.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, np.inf)


def scored_steps(traj) -> dict[str, np.ndarray]:
    """The steps after each student's first: probs, answers, momentary part, repeat signature."""
    first = np.zeros(len(traj.probs), dtype=bool)
    first[traj.offsets[:-1][np.diff(traj.offsets) > 0]] = True
    prev_skill = np.r_[-1, traj.skills[:-1]]
    prev_answer = np.r_[-1, traj.responses[:-1]]
    repeat = (prev_skill != traj.skills) & (prev_answer == traj.responses)
    keep = ~first
    out = {"p": traj.probs[keep].astype(np.float64), "y": traj.responses[keep].astype(np.float64),
           "repeat": repeat[keep]}
    if traj.parts is not None:
        out["momentary"] = traj.parts[keep, 2].astype(np.float64)
    return out


def bin_rows(values: np.ndarray, edges, steps: dict, label) -> list[dict]:
    """One row per non-empty bin [lo, hi) of values (the last bin includes hi)."""
    idx = np.clip(np.searchsorted(np.asarray(edges), values, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        m = idx == b
        if m.any():
            rows.append({"bin": label(edges[b], edges[b + 1]), "steps": int(m.sum()),
                         "mean_p": float(steps["p"][m].mean()), "observed": float(steps["y"][m].mean()),
                         "repeat": float(steps["repeat"][m].mean())})
    return rows


def calibration(traj) -> dict:
    from sklearn.metrics import brier_score_loss
    steps = scored_steps(traj)
    if len(steps["p"]) == 0:
        raise ValueError("no steps after a student's first to score")
    by_p = bin_rows(steps["p"], PROB_EDGES, steps, lambda lo, hi: f"{lo:g}–{hi:g}")
    ece = sum(r["steps"] * abs(r["mean_p"] - r["observed"]) for r in by_p) / len(steps["p"])
    out = {"steps": int(len(steps["p"])), "ece": float(ece),
           "brier": float(brier_score_loss(steps["y"], steps["p"])), "by_probability": by_p,
           "repeat_share": float(steps["repeat"].mean())}
    if "momentary" in steps:
        out["by_momentary"] = bin_rows(steps["momentary"], MOMENTARY_EDGES, steps,
                                       lambda lo, hi: f"{lo:g} to {hi:g}")
    return out


def table(rows: list[dict], first: str) -> str:
    return _common.md_table([first, "steps", "mean P(correct)", "observed correct", "repeat"],
                            [[r["bin"], f"{r['steps']:,}", f"{r['mean_p']:.3f}", f"{r['observed']:.3f}",
                              f"{r['repeat']:.3f}"] for r in rows])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("run", help="a trained run folder (or checkpoint)")
    ap.add_argument("--data", required=True, help="the data to score (a folder's test split, a file, or sim)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default=str(_common.DEFAULT_OUT / "calibration"))
    a = ap.parse_args(argv)
    from cmkt.runs.evaluate import score_checkpoint
    try:
        res = calibration(score_checkpoint(a.run, a.data, a.split).traj)
    except CmktError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {a.data}: {e}", file=sys.stderr)
        return 2
    text = (f"{a.run} on {a.data} ({a.split}): {res['steps']:,} steps, ECE {res['ece']:.4f}, "
            f"Brier {res['brier']:.4f}, repeat share {res['repeat_share']:.3f}\n\n"
            + table(res["by_probability"], "P(correct) bin") + "\n")
    if "by_momentary" in res:
        text += "\n" + table(res["by_momentary"], "momentary part (logit)") + "\n"
    text += f"\nMeasured with `{_common.command_line()}`\n"
    out = Path(a.out)
    _common.write_json(out / "calibration.json", {"run": str(a.run), "data": a.data, "split": a.split, **res})
    _common.write_text(out / "calibration.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
