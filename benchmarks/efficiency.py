#!/usr/bin/env python
"""Accuracy per second: test AUC against training seconds, every model kind at every preset
measured, on ASSIST2009 and ASSIST2015 (docs/RESULTS.md and docs/accuracy_per_second.svg).

    python benchmarks/efficiency.py --update-docs                   # train the quick grid (~15 min idle)
    python benchmarks/efficiency.py --runs DIR --update-docs        # only read finished run folders
    python benchmarks/efficiency.py --with-results docs/results.json --update-docs   # add the standard rows

Each point is one run folder's results.json (`train_seconds`, test AUC): the same numbers the
Runs page plots. The standard preset's points come from the headline table's rows
(docs/results.json) unless runs of it are given.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (DEFAULT_OUT, REPO, SHARED_DATA, command_line, machine_info, machine_line,  # noqa: E402
                     md_table, run_command, update_doc_section, write_json, write_text)

KINDS = ("cumulative", "original", "dkt", "bkt", "pfa")
COLORS = {"cumulative": "#1f77b4", "original": "#ff7f0e", "dkt": "#2ca02c", "bkt": "#9467bd", "pfa": "#8c564b"}
SVG = REPO / "docs" / "accuracy_per_second.svg"


def train_grid(datasets, presets, kinds, runs: Path, seed: int = 0) -> None:
    for ds in datasets:
        for preset in presets:
            for kind in kinds:
                print(f"[efficiency] {ds} {preset} {kind}", file=sys.stderr, flush=True)
                res = run_command([sys.executable, "-m", "cmkt", "train", "--data", str(SHARED_DATA / ds),
                                   "--model", kind, "--preset", preset, "--device", "cpu", "--out", str(runs),
                                   "--seed", str(seed)],
                                  timeout=4 * 3600)
                if res["returncode"] != 0:
                    raise RuntimeError(res["stderr"])


def points_from_runs(runs: Path) -> list[dict]:
    out = []
    for res_file in sorted(runs.glob("*/results.json")):
        r = json.loads(res_file.read_text())
        if r.get("test") and r.get("train_seconds") is not None:
            out.append({"data": r.get("data_name"), "kind": r.get("mode") or r.get("kind"), "preset": r.get("preset"),
                        "train_seconds": r["train_seconds"], "test_auc": r["test"]["auc"],
                        "mastery_auc": r["test"].get("mastery_auc"), "run": res_file.parent.name})
    return out


def points_from_results(path: Path, datasets) -> list[dict]:
    rows = json.loads(path.read_text())["rows"]
    return [{"data": r["dataset"], "kind": r["mode"], "preset": r["preset"], "train_seconds": r["train_seconds"],
             "test_auc": r["test_auc"], "mastery_auc": r.get("mastery_auc"), "run": Path(r["run"]).name}
            for r in rows if r.get("status") == "ok" and r["dataset"] in datasets]


def svg(points: list[dict], datasets) -> str:
    """A scatter per data set: test AUC against training seconds (log scale)."""
    W, H, pad = 360, 300, 48
    panels = []
    for i, ds in enumerate(datasets):
        pts = [p for p in points if p["data"] == ds]
        if not pts:
            continue
        xs = [math.log10(max(p["train_seconds"], 0.5)) for p in pts]
        ys = [p["test_auc"] for p in pts]
        x0, x1 = math.floor(min(xs)), math.ceil(max(xs)) + (math.ceil(max(xs)) == math.floor(min(xs)))
        y0, y1 = math.floor(min(ys) * 100) / 100, math.ceil(max(ys) * 100) / 100 + 0.005
        fx = lambda x: i * W + pad + (x - x0) / (x1 - x0) * (W - pad - 12)
        fy = lambda y: H - pad + (y - y0) / (y1 - y0) * -(H - pad - 30)
        g = [f'<text x="{i * W + W / 2}" y="18" text-anchor="middle" font-weight="bold">{ds}</text>',
             f'<line x1="{fx(x0)}" y1="{fy(y0)}" x2="{fx(x1)}" y2="{fy(y0)}" stroke="#444"/>',
             f'<line x1="{fx(x0)}" y1="{fy(y0)}" x2="{fx(x0)}" y2="{fy(y1)}" stroke="#444"/>']
        for e in range(x0, x1 + 1):
            g.append(f'<text x="{fx(e)}" y="{fy(y0) + 16}" text-anchor="middle" font-size="11">{10 ** e:g} s</text>')
        step = 0.01 if y1 - y0 <= 0.06 else 0.02
        for k in range(int((y1 - y0) / step + 1e-9) + 1):
            y = y0 + k * step
            g.append(f'<text x="{fx(x0) - 4}" y="{fy(y) + 4}" text-anchor="end" font-size="11">{y:.2f}</text>')
        for p, x, y in zip(pts, xs, ys):
            shape = (f'<rect x="{fx(x) - 5}" y="{fy(y) - 5}" width="10" height="10"' if p["preset"] == "standard"
                     else f'<circle cx="{fx(x)}" cy="{fy(y)}" r="5"')
            g.append(f'{shape} fill="{COLORS.get(p["kind"], "#777")}"><title>{p["kind"]} {p["preset"]}: '
                     f'{p["test_auc"]:.4f} in {p["train_seconds"]:.0f} s</title></{"rect" if p["preset"] == "standard" else "circle"}>')
        panels.append("\n".join(g))
    legend = [f'<circle cx="{20 + 110 * j}" cy="{H + 14}" r="5" fill="{c}"/><text x="{28 + 110 * j}" y="{H + 18}" '
              f'font-size="12">{k}</text>' for j, (k, c) in enumerate(COLORS.items())]
    legend.append(f'<text x="{20 + 110 * len(COLORS)}" y="{H + 18}" font-size="12">● quick ■ standard</text>')
    width = W * len(datasets)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H + 30}" font-family="sans-serif">'
            f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(panels + legend) +
            f'\n<text x="{width / 2}" y="{H - 8}" text-anchor="middle" font-size="12">training seconds (log scale)</text></svg>\n')


def report(res: dict) -> str:
    info = res["machine"]
    lines = [f"Measured {info['date']} on {machine_line(info)}.", f"Command: `{res['command']}`.", ""]
    for src in res.get("sources", []):
        lines.append(f"Also: {src}.")
    lines += ["", "![test AUC against training seconds](accuracy_per_second.svg)", ""]
    rows = sorted(res["points"], key=lambda p: (p["data"], p["train_seconds"]))
    lines.append(md_table(["data set", "model", "preset", "train s", "test AUC", "mastery AUC"],
                          [[p["data"], p["kind"], p["preset"], f"{p['train_seconds']:.0f}", f"{p['test_auc']:.4f}",
                            f"{p['mastery_auc']:.4f}" if p.get("mastery_auc") is not None else "–"]
                           for p in rows]))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="assist2009,assist2015")
    p.add_argument("--presets", default="quick")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", default=None, help="read finished run folders here instead of training")
    p.add_argument("--with-results", default=None, metavar="RESULTS_JSON", help="add these rows (e.g. docs/results.json)")
    p.add_argument("--out", default=str(DEFAULT_OUT / "efficiency"))
    p.add_argument("--update-docs", action="store_true")
    a = p.parse_args(argv)
    datasets = a.datasets.split(",")
    out = Path(a.out)
    runs = Path(a.runs) if a.runs else out / "runs"
    res = {"machine": machine_info(), "command": command_line(), "sources": []}
    if not a.runs:
        train_grid(datasets, a.presets.split(","), a.kinds.split(","), runs, a.seed)
    res["points"] = [pt for pt in points_from_runs(runs) if pt["data"] in datasets]
    if a.with_results:
        have = {(pt["data"], pt["kind"], pt["preset"]) for pt in res["points"]}
        extra = [pt for pt in points_from_results(Path(a.with_results), datasets)
                 if (pt["data"], pt["kind"], pt["preset"]) not in have]
        res["points"] += extra
        res["sources"].append(f"the `standard` rows of {a.with_results} (the headline table's runs, "
                              "each measured as that table says)")
    text = report(res)
    write_json(out / "efficiency.json", res)
    write_text(out / "efficiency.md", text)
    print(text)
    if a.update_docs:
        write_text(SVG, svg(res["points"], datasets))
        update_doc_section("efficiency", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
