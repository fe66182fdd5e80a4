#!/usr/bin/env python
"""Where bfloat16 helps training on this machine: the real trainer's epoch in float32 and in
bfloat16 autocast, per preset, and what `amp=auto` picks (cmkt/train/accel.py).

    python benchmarks/precision.py                   # ASSIST2015 subset, quick and standard presets
    python benchmarks/precision.py --update-docs     # also rewrite the precision section of docs/RESULTS.md
    python benchmarks/precision.py --quick           # tiny smoke run on simulated data (seconds)

For each preset (its full cumulative model: the mastery predictor, and at the standard size the
readout and the LSTM) it times Trainer.train_epoch, the library's own loop, on the same seeded
subset of training students, in three settings:
  - float32 (`amp=off`);
  - bfloat16 autocast with the attention kept in float32 (cmkt's CPU default under autocast);
  - bfloat16 autocast with the attention in bfloat16 too (CPU_ATTENTION_FLOAT32 switched off),
    to show why the attention stays in float32 on the CPU.
Each: one warm-up epoch, then the best and the median of --repeats epochs; then one epoch under
torch.profiler for the time in matrix products (mm, addmm, bmm) and in the attention backward.
Outputs benchmarks/out/precision.json and precision.md (--out to change).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (DEFAULT_OUT, SHARED_DATA, command_line, fmt, machine_info,  # noqa: E402
                     machine_line, md_table, pick_students, update_doc_section, write_json, write_text)

SETTINGS = {  # name: (amp, attention in float32 under CPU autocast)
    "float32": ("off", True),
    "bfloat16, attention float32": ("bf16", True),
    "bfloat16, attention bfloat16": ("bf16", False),
}
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm")
ATTENTION_BACKWARD = "flash_attention_for_cpu_backward"
QUICK_SIM = "sim:students=40,skills=5"
TINY = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "30", "gain_hidden": "16"}


def measure(data, sub, preset: str, setting: str, overrides: dict, repeats: int, seed: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import cmkt.model.gainakt2 as gainakt2
    from cmkt.train.config import build_configs
    from cmkt.data.source import DataSplits
    from cmkt.train.trainer import Trainer
    amp, attention_fp32 = SETTINGS[setting]
    mc, tc = build_configs(data.num_skills, "cumulative", preset, dict(overrides, amp=amp), device="cpu", seed=seed)
    trainer = Trainer(mc, tc, DataSplits(data.name, sub, sub, None, data.num_skills, data.skill_labels,
                                         data.skill_names))
    saved = gainakt2.CPU_ATTENTION_FLOAT32
    gainakt2.CPU_ATTENTION_FLOAT32 = attention_fp32
    try:
        trainer.train_epoch(0)                                    # warm-up
        times = []
        for epoch in range(1, repeats + 1):
            t0 = time.perf_counter()
            trainer.train_epoch(epoch)
            times.append(time.perf_counter() - t0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.train_epoch(repeats + 1)
    finally:
        gainakt2.CPU_ATTENTION_FLOAT32 = saved
    ka = prof.key_averages()
    matmul_ms = sum(e.self_cpu_time_total for e in ka if e.key in MATMUL_OPS) / 1000
    att = [e for e in ka if ATTENTION_BACKWARD in e.key]
    att_ms = sum(e.self_cpu_time_total for e in att) / 1000
    att_calls = sum(e.count for e in att)
    return {"preset": preset, "setting": setting, "amp": amp, "attention_float32": attention_fp32,
            "precision": trainer.precision, "d_model": mc.d_model, "epoch_seconds": times,
            "best_seconds": min(times), "median_seconds": statistics.median(times),
            "matmul_ms": matmul_ms, "attention_backward_ms": att_ms,
            "attention_backward_ms_per_call": att_ms / att_calls if att_calls else None,
            "interactions": int(sum(len(s) for s in sub.skills))}


def report(res: dict) -> str:
    info = res["machine"]
    lines = [f"Measured {info['date']} on {machine_line(info)}; native bfloat16 arithmetic: "
             f"{'yes' if res['native_bf16'] else 'no'}.",
             f"Command: `{res['command']}` ({res['wall_seconds']:.0f} s).", "",
             f"One epoch of `Trainer.train_epoch` over the same {res['rows'][0]['interactions']:,} interactions "
             f"(a seeded subset of `{res['data_name']}` train), cumulative model of each preset, best and median "
             f"of {res['repeats']} epochs after a warm-up; matrix products and attention backward from "
             f"torch.profiler over one more epoch (self CPU time).", ""]
    base = {r["preset"]: r["best_seconds"] for r in res["rows"] if r["setting"] == "float32"}
    rows = []
    for r in res["rows"]:
        per_call = r["attention_backward_ms_per_call"]
        rows.append([f"`{r['preset']}` ({r['d_model']} wide)", r["setting"], f"{r['best_seconds']:.2f}",
                     f"{r['median_seconds']:.2f}", f"{base[r['preset']] / r['best_seconds']:.2f}x",
                     f"{r['matmul_ms']:,.0f}", fmt(per_call, 2) if per_call is not None else "–"])
    lines.append(md_table(["preset", "precision", "epoch s (best)", "median", "vs float32",
                           "matrix products ms", "attention backward ms / call"], rows))
    lines += ["", "What `amp=auto` (the default) picks on this machine: " +
              "; ".join(f"`{p}`: {v}" for p, v in res["auto"].items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED_DATA / "assist2015"))
    p.add_argument("--presets", default="quick,standard")
    p.add_argument("--interactions", type=int, default=50_000)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--update-docs", action="store_true")
    p.add_argument("--quick", action="store_true", help="tiny smoke run on simulated data")
    p.add_argument("--report", metavar="PRECISION_JSON", help="re-render a saved measurement")
    a = p.parse_args(argv)
    if a.report:
        print(report(__import__("json").loads(Path(a.report).read_text())))
        return 0
    import torch

    from cmkt.train import accel
    from cmkt.train.config import build_configs
    from cmkt.data.source import load_training_data
    from cmkt.train.trainer import set_threads
    set_threads(0)
    info = machine_info()
    t0 = time.perf_counter()
    spec, overrides = (QUICK_SIM, TINY) if a.quick else (a.data, {})
    if a.quick:
        a.presets, a.interactions, a.repeats = "quick", 10**9, 1
    data = load_training_data(spec)
    sub = pick_students(data.train, a.interactions, a.seed)
    rows, auto = [], {}
    for preset in a.presets.split(","):
        for setting in SETTINGS:
            print(f"[precision] {preset}: {setting}", file=sys.stderr)
            rows.append(measure(data, sub, preset, setting, overrides, a.repeats, a.seed))
        mc, _ = build_configs(data.num_skills, "cumulative", preset, overrides)
        auto[preset] = accel.precision_name(accel.amp_dtype(torch.device("cpu"), "auto", mc.d_model))
    info["loadavg_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    res = {"machine": info, "command": command_line(), "data_name": data.name, "repeats": a.repeats,
           "native_bf16": accel.cpu_has_native_bf16(), "rows": rows, "auto": auto,
           "wall_seconds": time.perf_counter() - t0}
    out = Path(a.out)
    write_json(out / "precision.json", res)
    text = report(res)
    write_text(out / "precision.md", text)
    print(text)
    if a.update_docs and not a.quick:
        update_doc_section("precision", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
