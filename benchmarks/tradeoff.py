#!/usr/bin/env python
"""Faithfulness against accuracy: the cumulative model with the `mastery` predictor trained at
momentary_bound 0, 0.5, 1, 2 and unbounded, beside the counting models (PFA, monotone counting).

    python benchmarks/tradeoff.py                                   # ASSIST2009, quick preset
    python benchmarks/tradeoff.py --datasets assist2009,assist2015 --update-docs
    python benchmarks/tradeoff.py --quick                           # tiny smoke run on sim

momentary_bound caps what the streams may add to mastery + difficulty (logit units): at 0 the
prediction is a function of mastery and difficulty alone (every prediction is what mastery says),
unbounded it is free. For each bound: test AUC, mastery AUC (mastery alone ranking the answers),
and the ratio of mastery's correlation with the answers to the prediction's. Writes
benchmarks/out/tradeoff.json, and with --update-docs the tradeoff section of docs/RESULTS.md and
assets/tradeoff.json (the points the dashboard plots).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (DEFAULT_OUT, REPO, SHARED_DATA, command_line, fmt, machine_info,  # noqa: E402
                     machine_line, md_table, update_doc_section, write_json)

BOUNDS = ("0", "0.5", "1", "2", "inf")
ASSET = REPO / "assets" / "tradeoff.json"
QUICK_SIM = "sim:students=60,skills=6"
TINY = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "50", "gain_hidden": "16"}


def corr_ratio(test: dict):
    m, p = test.get("mastery_performance_corr"), test.get("prediction_performance_corr")
    return None if m is None or not p else m / p


def run_bound(spec: str, bound: str, preset: str, epochs, extra: dict, seed: int, runs_dir: Path) -> dict:
    from cmkt.runs import create_run, execute_run
    overrides = {"predictor": "mastery", "base": "prior", "momentary_bound": bound, **extra}
    run = create_run(runs_dir, data=spec, mode="cumulative", preset=preset, epochs=epochs,
                     overrides=overrides, seed=seed, device="auto")
    res = execute_run(run)
    test = res.get("test") or res.get("valid") or {}
    auc = test.get("auc", test.get("val_auc"))
    return {"bound": None if bound == "inf" else float(bound), "auc": auc,
            "mastery_auc": test.get("mastery_auc"), "corr_ratio": corr_ratio(test),
            "mastery_saturation_rate": test.get("mastery_saturation_rate"),
            "students_with_violation": test.get("students_with_violation"),
            "train_seconds": res.get("train_seconds"), "run": str(run)}


def report(res: dict) -> str:
    info = res["machine"]
    lines = [f"Measured {info['date']} on {machine_line(info)}.",
             f"Command: `{res['command']}` ({res['preset']} preset, {res['wall_seconds'] / 60:.1f} min).", ""]
    for data, block in res["data"].items():
        lines.append(f"**{data}** (test split):")
        lines.append("")
        rows = [[("unbounded" if p["bound"] is None else f"{p['bound']:g}"), fmt(p["auc"]),
                 fmt(p["mastery_auc"]), fmt(p["corr_ratio"], 2), fmt(p["mastery_saturation_rate"]),
                 fmt(p["students_with_violation"]), f"{p['train_seconds']:.0f}"] for p in block["points"]]
        lines.append(md_table(["momentary_bound", "AUC", "mastery AUC", "mastery r ÷ prediction r",
                               "saturation", "students w/ viol.", "train s"], rows))
        counting = block.get("counting") or {}
        if counting:
            from cmkt.analysis.counting import COUNTING_LABELS
            lines += ["", "Counting models on the same split (logistic regression fitted on train.csv):", ""]
            lines.append(md_table(["model", "AUC"], [[COUNTING_LABELS[k], fmt(v)] for k, v in counting.items()]))
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="assist2009", help="comma-separated: synthetic, assist2009, assist2015, sim")
    p.add_argument("--bounds", default=",".join(BOUNDS), help="comma-separated momentary_bound values ('inf': unbounded)")
    p.add_argument("--preset", default="quick")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=str(SHARED_DATA))
    p.add_argument("--out", default=None)
    p.add_argument("--no-counting", action="store_true", help="skip the counting models")
    p.add_argument("--update-docs", action="store_true",
                   help="rewrite the tradeoff section of docs/RESULTS.md and assets/tradeoff.json")
    p.add_argument("--quick", action="store_true", help=f"tiny smoke run on {QUICK_SIM}, 1 epoch")
    p.add_argument("--report", metavar="TRADEOFF_JSON", help="train nothing: re-render an earlier run's "
                   "tradeoff.json (with --update-docs: into docs/RESULTS.md and assets/tradeoff.json)")
    a = p.parse_args(argv)
    if a.report:
        import json
        res = json.loads(Path(a.report).read_text())
        print(report(res))
        if a.update_docs:
            publish(res)
        return 0
    extra = dict(item.split("=", 1) for item in a.set)
    if a.quick:
        extra = {**TINY, **extra}
    out = Path(a.out) if a.out else (DEFAULT_OUT / "quick" if a.quick else DEFAULT_OUT)
    names = ["sim"] if a.quick else [n.strip() for n in a.datasets.split(",") if n.strip()]
    res = {"machine": machine_info(), "command": command_line(), "preset": a.preset, "data": {}}
    t0 = time.perf_counter()
    for name in names:
        spec = QUICK_SIM if a.quick else ("sim" if name == "sim" else str(Path(a.data_root) / name))
        block = {"points": []}
        for bound in [b.strip() for b in a.bounds.split(",") if b.strip()]:
            print(f"[tradeoff] {name} momentary_bound={bound}", file=sys.stderr, flush=True)
            point = run_bound(spec, bound, a.preset, 1 if a.quick else a.epochs, extra, a.seed, out / "runs")
            print(f"[tradeoff]   AUC {fmt(point['auc'])}, mastery AUC {fmt(point['mastery_auc'])}",
                  file=sys.stderr, flush=True)
            block["points"].append(point)
            res["data"][name] = block
            res["wall_seconds"] = time.perf_counter() - t0
            write_json(out / "tradeoff.json", res)
        if not a.no_counting and name != "sim":
            from cmkt.analysis.counting import counting_aucs
            from cmkt.data.source import load_eval_data
            train = load_eval_data(spec, "train")
            test = load_eval_data(spec, "test", skill_labels=train.skill_labels, num_skills=train.num_skills)
            block["counting"] = counting_aucs(train, test)
    res["machine"]["loadavg_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    res["wall_seconds"] = time.perf_counter() - t0
    write_json(out / "tradeoff.json", res)
    text = report(res)
    print(text)
    if a.update_docs:
        publish(res)
    return 0


def publish(res: dict) -> None:
    """The tradeoff section of docs/RESULTS.md and the points the dashboard plots."""
    update_doc_section("tradeoff", report(res))
    write_json(ASSET, {"command": res["command"], "date": res["machine"]["date"], "preset": res["preset"],
                       "points": [dict(data=n, **{k: v for k, v in pt.items() if k != "run"})
                                  for n, b in res["data"].items() for pt in b["points"]],
                       "counting": {n: b.get("counting") for n, b in res["data"].items()}})


if __name__ == "__main__":
    sys.exit(main())
