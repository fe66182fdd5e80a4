#!/usr/bin/env python
"""Speed and memory of what ships, against the reference approach, in one run.

    python benchmarks/speed.py                      # ASSIST2015: quick and standard, each kind, the reference
    python benchmarks/speed.py --full --update-docs # also train the standard cumulative model and DKT to the end
    python benchmarks/speed.py --quick              # a seconds-long smoke run on simulated students

Every cmkt model is built exactly as `cmkt train --model KIND --preset P` builds it and trained by
the real Trainer, timed through its callbacks (benchmarks/_common.py: train_epochs). The reference
approach (benchmarks/reference_approach.py) is the first release's model at the same size, padded
to 200 steps with a Python loop over time. Each measurement runs in its own process (its peak
resident set is its own). Reported: seconds per epoch (as metrics.jsonl records them, and the
training part alone), interactions per second, the ratio to the reference, peak memory, FLOPs per
epoch over a measured matmul peak (MFU), and the whole `cmkt train --epochs 1` command against the
reference's load + epoch + validation + test, each a process of its own timed from outside (start
and imports included on both sides).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (DEFAULT_OUT, SHARED_DATA, command_line, fmt, machine_info, machine_line,  # noqa: E402
                     md_table, run_command, train_epochs, update_doc_section, write_json, write_text)


# ---- workers (each in its own process) ------------------------------------------------------

def _flops_of_epoch(trainer) -> int:
    """FLOPs of one more training epoch (matmuls, linear layers, attention) of the trainer's model."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        trainer.train_epoch(99)
    return int(fc.get_total_flops())


def worker(kind: str, spec: dict) -> dict:
    if kind == "epochs":
        out = train_epochs(spec["data"], spec["mode"], spec["preset"], spec["epochs"], spec.get("overrides"),
                           threads=spec["threads"], interactions=spec.get("interactions"))
        trainer = out.pop("trainer")
        out["flops"] = _flops_of_epoch(trainer) if spec.get("flops") and hasattr(trainer, "train_epoch") else None
        return out
    if kind == "reference":
        from reference_approach import reference_run
        return reference_run(spec["data"], spec["preset"], spec["epochs"], threads=spec["threads"],
                             interactions=spec.get("interactions"), overrides=spec.get("overrides"),
                             check=spec.get("check", True))
    if kind == "matmul":
        import time

        import torch
        torch.set_num_threads(spec["threads"] or torch.get_num_threads())
        best = 0.0
        for n in (512, 1024, 2048):
            a, b = torch.randn(n, n), torch.randn(n, n)
            torch.matmul(a, b)
            for _ in range(3):
                t0 = time.perf_counter()
                torch.matmul(a, b)
                best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
        return {"peak_flops": best}
    raise ValueError(kind)


def run_worker(kind: str, spec: dict, timeout: int = 7200) -> dict:
    print(f"[speed] {kind} {spec.get('mode', '')} {spec.get('preset', '')}".rstrip(), file=sys.stderr, flush=True)
    res = run_command([sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(spec)], timeout)
    if res["returncode"] != 0:
        raise RuntimeError(f"worker {kind} failed:\n{res['stderr']}")
    out = json.loads(res["stdout"].strip().splitlines()[-1])
    out["peak_rss_mb"] = res["peak_rss_mb"]
    return out


# ---- measuring ----------------------------------------------------------------------------

def measure(a) -> dict:
    data = a.data
    base = {"data": data, "threads": a.threads, "interactions": a.interactions}
    res = {"machine": machine_info(), "command": command_line(), "data": data, "epochs": {}, "command_runs": {},
           "full": {}}
    res["matmul"] = run_worker("matmul", {"threads": a.threads})
    for preset in a.presets:
        base["epochs"] = a.epochs or (2 if preset == "quick" else 1)
        res["epochs"][preset] = {"reference": run_worker("reference", dict(base, preset=preset, overrides=a.overrides))}
        for mode in a.kinds:
            spec = dict(base, mode=mode, preset=preset, flops=True,
                        overrides=a.overrides if mode in ("cumulative", "original") else {})
            res["epochs"][preset][mode] = run_worker("epochs", spec)
    if "quick" in a.presets:               # the reference's command as a whole process too, timed as cmkt's is
        print("[speed] command reference quick", file=sys.stderr, flush=True)
        spec = dict(base, preset="quick", epochs=1, overrides=a.overrides, check=False)
        run = run_command([sys.executable, str(Path(__file__).resolve()), "--worker", "reference", json.dumps(spec)])
        if run["returncode"] != 0:          # kept, not raised: the epochs measured so far are written
            print(f"[speed] the reference's command failed:\n{run['stderr']}", file=sys.stderr, flush=True)
        res["command_runs"]["reference"] = {k: v for k, v in run.items() if k != "stdout"}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in a.kinds:
            cmd = [sys.executable, "-m", "cmkt", "train", "--data", data, "--model", mode, "--preset", "quick",
                   "--epochs", "1", "--device", "cpu", "--out", tmp]
            for k, v in (a.overrides if mode in ("cumulative", "original") else {}).items():
                cmd += ["--set", f"{k}={v}"]
            print(f"[speed] command {mode} quick", file=sys.stderr, flush=True)
            res["command_runs"][mode] = {k: v for k, v in run_command(cmd).items() if k != "stdout"}
        if a.full:
            for mode in a.full_kinds:
                cmd = [sys.executable, "-m", "cmkt", "train", "--data", data, "--model", mode, "--preset",
                       "standard", "--device", "cpu", "--out", tmp]
                print(f"[speed] full standard {mode}", file=sys.stderr, flush=True)
                run = run_command(cmd, timeout=4 * 3600)
                folder = Path(run["stdout"].strip().splitlines()[-1]) if run["returncode"] == 0 else None
                results = json.loads((folder / "results.json").read_text()) if folder else {}
                res["full"][mode] = {"seconds": run["seconds"], "returncode": run["returncode"],
                                     "train_seconds": results.get("train_seconds"),
                                     "test_auc": (results.get("test") or {}).get("auc"),
                                     "mastery_auc": (results.get("test") or {}).get("mastery_auc"),
                                     "epochs_run": results.get("epochs_run"), "peak_rss_mb": run["peak_rss_mb"]}
    return res


# ---- the report ---------------------------------------------------------------------------

def _best(rec: dict, key: str) -> float | None:
    vals = [e[key] for e in rec["epochs"] if e.get(key) is not None]
    return min(vals) if vals else None


def report(res: dict) -> str:
    info, peak = res["machine"], res["matmul"]["peak_flops"]
    lines = [f"Measured {info['date']} on {machine_line(info)}.", f"Command: `{res['command']}`", ""]
    for preset, recs in res["epochs"].items():
        ref = recs["reference"]
        ref_train = _best(ref, "train_seconds")
        rows = []
        for mode, r in recs.items():
            tr, ep = _best(r, "train_seconds"), _best(r, "seconds")
            mfu = f"{100 * r['flops'] / tr / peak:.1f}%" if r.get("flops") and tr else "–"
            rows.append([f"**{mode}**" if mode == "cumulative" else mode, fmt(ep, 2), fmt(tr, 2),
                         f"{r['interactions'] / tr:,.0f}" if tr else "–",
                         f"{ref_train / tr:.1f}x" if tr and mode != "reference" else "1x",
                         f"{r['n_params']:,}", fmt(r.get("peak_rss_mb"), 0),
                         f"{r['flops'] / 1e9:,.0f}" if r.get("flops") else "–", mfu])
        lines += [f"**`{preset}`** ({ref['interactions']:,} training interactions; best of "
                  f"{len(ref['epochs'])} epochs; the reference is the first release's model at this size, "
                  f"padded to 200 with the Python loop):", ""]
        lines.append(md_table(["model", "epoch s (metrics.jsonl)", "training part s", "interactions/s",
                               "vs reference", "parameters", "peak RSS MB", "GFLOP / epoch", "MFU"], rows))
        lines.append("")
    cr = dict(res.get("command_runs") or {})
    quick_ref = (res["epochs"].get("quick") or {}).get("reference")
    ref_cmd = cr.pop("reference", None)        # the reference as a whole process (runs since 2026-12-06)
    if ref_cmd and ref_cmd.get("returncode") != 0:
        ref_cmd = None                          # it failed: the in-process figure is the reference
    if cr and quick_ref:
        ref_s = ref_cmd["seconds"] if ref_cmd else quick_ref["command_seconds"]
        rows = [[f"`cmkt train --model {m} --preset quick --epochs 1`", f"{r['seconds']:.1f}",
                 f"{ref_s / r['seconds']:.1f}x", fmt(r.get("peak_rss_mb"), 0)] for m, r in cr.items()]
        if ref_cmd:
            rows.append(["reference, a process of its own: start, imports, load + 1 epoch + validation + test",
                         f"{ref_s:.1f}", "1x", fmt(ref_cmd.get("peak_rss_mb"), 0)])
        rows.append(["reference, timed inside its process: load + 1 epoch + validation + test",
                     f"{quick_ref['command_seconds']:.1f}", "1x" if not ref_cmd else "–",
                     fmt(quick_ref.get("peak_rss_mb"), 0)])
        lines += ["Whole command (start Python, import, read the data, one epoch, validation, test; each "
                  "command a process of its own, timed from outside" + (")" if ref_cmd else
                  "; the reference timed inside its process, without its start and imports)") + ":", "",
                  md_table(["command", "seconds", "vs reference", "peak RSS MB"], rows), ""]
    if res.get("full"):
        rows = [[m, fmt(r.get("train_seconds"), 0), fmt(r.get("test_auc")), fmt(r.get("mastery_auc")),
                 fmt(r.get("epochs_run"))] for m, r in res["full"].items()]
        lines += ["The `standard` preset trained to the end (early stopping; the cumulative model's "
                  "mastery phase and stack included):", "",
                  md_table(["model", "train s", "test AUC", "mastery AUC", "epochs"], rows), ""]
    lines.append(f"Matmul peak (float32): {peak / 1e9:,.1f} GFLOP/s. MFU = counted FLOPs of one training "
                 f"epoch (torch FlopCounterMode: matmuls, linear layers, attention) / training seconds / peak.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--data", default=str(SHARED_DATA / "assist2015"))
    p.add_argument("--presets", default="quick,standard")
    p.add_argument("--kinds", default="cumulative,original,dkt", help="model kinds timed per epoch")
    p.add_argument("--epochs", type=int, default=None, help="epochs timed per model, the best reported "
                   "(default: 2 at quick, 1 at the larger presets)")
    p.add_argument("--interactions", type=int, default=None, help="a seeded subset of the training students")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for cmkt's models")
    p.add_argument("--full", action="store_true", help="also train `standard` to the end (cumulative, DKT)")
    p.add_argument("--full-kinds", default="cumulative,dkt")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny simulated data, quick preset")
    p.add_argument("--out", default=None)
    p.add_argument("--report", metavar="SPEED_JSON", help="re-render an earlier run, measure nothing")
    p.add_argument("--update-docs", action="store_true", help="rewrite the speed section of docs/RESULTS.md")
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker[0], json.loads(a.worker[1])), default=float))
        return 0
    a.presets = a.presets.split(",")
    a.kinds = a.kinds.split(",")
    a.full_kinds = a.full_kinds.split(",")
    a.overrides = dict(s.split("=", 1) for s in a.set)
    if a.quick:
        a.data, a.presets, a.epochs, a.full = "sim:students=60,skills=4", ["quick"], 1, False
        a.overrides = {"d_model": "16", "n_heads": "2", "d_ff": "16", **a.overrides}
    out = Path(a.out or (DEFAULT_OUT / ("speed_quick" if a.quick else "speed")))
    res = json.loads(Path(a.report).read_text()) if a.report else measure(a)
    text = report(res)
    write_json(out / "speed.json", res)
    write_text(out / "speed.md", text)
    print(text)
    if a.update_docs:
        update_doc_section("speed", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
