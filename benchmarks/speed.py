#!/usr/bin/env python
"""Speed and memory of cmkt against the reference system's approach, measured in the same run.

    python benchmarks/speed.py                       # ASSIST2015, the `quick` model size, CPU
    python benchmarks/speed.py --update-docs         # also rewrite the speed section of docs/RESULTS.md
    python benchmarks/speed.py --quick               # tiny smoke run on simulated data (seconds)
    python benchmarks/speed.py --device cuda         # on a GPU machine

What it measures (each measurement in its own subprocess, so peak memory is its own):

1. Training throughput (real interactions per second) and peak memory on the same students
   (a seeded subset of the ASSIST2015 training split) with the same model (same layers, same
   weights at the start), for four variants:
     - reference: every window padded to 200 steps, batches in random order, and the
       cumulative mastery computed with a Python loop over time steps (the approach of the
       reference system);
     - cmkt: windows grouped by length and padded only to the longest in their batch, mastery
       in closed form min(1, m0 + 0.1 * cumsum(g)) (the library's Trainer.train_epoch), with the
       preset's dropout choices (no dropout inside attention, so the fused attention kernel
       runs; dropout masks drawn by cmkt's fast CPU kernel, cmkt/model/dropout.py), where the
       other three variants keep the first release's (attention dropout at the dropout rate,
       torch's Bernoulli masks), and in the library's default precision (`amp=auto`: bfloat16
       autocast on a CPU with native bfloat16 for models 128 wide and up, cmkt/train/accel.py), where
       the other three train in float32 (`--set amp=off` times cmkt in float32 too);
     - the two mixed variants, to attribute the speed-up to batching and to the mastery loop.
   Peak memory: the process's peak resident set (VmHWM, reset just before training) minus the
   resident set at that moment, i.e. the memory training itself needed (GPU: peak allocated).
2. Hardware utilisation: the model's FLOPs of one epoch (forward + backward, counted with
   torch.utils.flop_counter.FlopCounterMode; matmul, linear and attention FLOPs) divided by the
   epoch's time, over a measured float32 matmul peak (torch.matmul of large square matrices).
3. Scoring throughput: the time to score every ASSIST2015 test student and compute all the
   metrics (cmkt.analysis.scoring.score + cmkt.analysis.metrics.compute_metrics, the path of `cmkt validate`).
4. A profile of cmkt's training step: time per phase (batching, forward, losses, backward,
   optimizer) and the top operators by self CPU time (torch.profiler).

Outputs benchmarks/out/speed.json and speed.md (--out to change).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (DEFAULT_OUT, REPO, SHARED_DATA, command_line, fmt, machine_info,  # noqa: E402
                     machine_line, md_table, pick_students, update_doc_section, write_json, write_text)

REF_LEN = 200   # the reference system pads every sequence to 200 steps

VARIANTS = {
    # name: (batching, mastery)
    "reference": ("pad200", "loop"),
    "pad200 + closed form": ("pad200", "closed"),
    "length-bucketed + loop": ("bucketed", "loop"),
    "cmkt": ("bucketed", "closed"),
}


# ---------------------------------------------------------------------------------------
# memory helpers (Linux /proc; fall back to getrusage)

def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    hwm = _status_kb("VmHWM")
    if hwm is None:
        import resource
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return hwm / 1024


def rss_mb() -> float:
    v = _status_kb("VmRSS")
    return (v or 0) / 1024


# ---------------------------------------------------------------------------------------
# the reference approach, built from cmkt's own parts (same modules, same weights)

FIRST_RELEASE = {"predictor": "mlp", "base": "context", "accumulation": "linear", "momentary_bound": "1",
                 "mastery_loss": "0", "readout": "none", "recurrent": "0",
                 "gain_encoder": "value"}
# the first release dropped out attention weights at the dropout rate (the unfused attention
# kernel) and drew dropout masks with torch's Bernoulli kernel; cmkt's presets choose their own
# (attn_dropout 0: the fused attention kernel; dropout_kernel "fast": cmkt/model/dropout.py).
# and trained in float32; only the `cmkt` variant (the library as it trains) takes the preset's
# choices and the default precision (amp auto: bfloat16 autocast where it helps, cmkt/train/accel.py).
REFERENCE_ATTENTION = {"attn_dropout": "none", "dropout_kernel": "torch", "amp": "off"}


def variant_overrides(variant: str | None, overrides: dict) -> dict:
    """Model overrides of one variant: the first release's model, and for every variant but cmkt
    its attention dropout; then the command line's --set values."""
    base = dict(FIRST_RELEASE)
    if variant != "cmkt":
        base.update(REFERENCE_ATTENTION)
    return dict(base, **overrides, max_len=str(REF_LEN))


def make_loop_model(cfg):
    """GainAKT2 whose cumulative mastery is computed step by step with a Python loop:
    m_1 = sigmoid(head(context_1)), then m_t = clamp(m_{t-1} + scale * g_t, 0, 1)."""
    import torch
    import torch.nn.functional as F
    from cmkt.model import GainAKT2
    from cmkt.model.gainakt2 import GainAKT2Output

    class LoopGainAKT2(GainAKT2):
        def forward(self, skills, responses, start=None, keep_from=None):
            cfg = self.cfg
            B, T = skills.shape
            tokens = skills + cfg.num_skills * responses
            pos = torch.arange(T, device=skills.device)
            ctx = self.emb_drop(self.ctx_embed(tokens) + self.ctx_pos(pos))
            val = self.emb_drop(self.val_embed(tokens) + self.val_pos(pos))
            for block in self.blocks:
                ctx, val = block(ctx, val)
            prev_ctx = torch.cat([self.start[0].expand(B, 1, -1), ctx[:, :-1]], dim=1)
            prev_val = torch.cat([self.start[1].expand(B, 1, -1), val[:, :-1]], dim=1)
            feats = torch.cat([prev_ctx, prev_val, self.skill_embed(skills)], dim=-1)
            logits = self.predictor(feats).squeeze(-1)
            gains = F.relu(self.gain_head(self.gain_input(tokens, val)))
            gains = torch.cat([torch.zeros_like(gains[:, :1]), gains[:, 1:]], dim=1)  # step 1 made the base
            m = torch.sigmoid(self.mastery_head(ctx[:, 0]))            # (B, C)
            steps = []
            for t in range(T):                                          # the Python loop
                m = torch.clamp(m + cfg.gain_scale * gains[:, t], 0.0, 1.0)
                steps.append(m)
            return GainAKT2Output(logits=logits, mastery=torch.stack(steps, dim=1), gains=gains)

    return LoopGainAKT2(cfg)


def batch_groups(ds, batching: str, batch_size: int, seed: int):
    """(windows, groups, pad_to): cmkt's length-bucketed plan, or the reference's
    random batches of 200-step windows (every window padded to 200)."""
    import numpy as np
    from cmkt.data.batching import batch_plan, make_windows
    windows = make_windows(ds, REF_LEN, min_len=2)
    if batching == "bucketed":
        return windows, batch_plan(windows, batch_size, shuffle=True, seed=seed), None
    order = np.random.default_rng(seed).permutation(len(windows))
    return windows, [order[i:i + batch_size] for i in range(0, len(order), batch_size)], REF_LEN


def collate_to(ds, windows, idx, device, pad_to):
    import torch
    from cmkt.data.batching import collate
    skills, responses, mask = collate(ds, windows, idx, device)
    if pad_to is not None and skills.shape[1] < pad_to:
        extra = pad_to - skills.shape[1]
        pad = torch.nn.functional.pad
        skills, responses, mask = pad(skills, (0, extra)), pad(responses, (0, extra)), pad(mask, (0, extra))
    return skills, responses, mask


def hinge_kw(train_cfg) -> dict:
    """The trainer's loss choices (the hinge and the mastery part's own cross-entropy weight),
    passed on as Trainer.train_epoch does."""
    if not hasattr(train_cfg, "mastery_hinge"):
        return {}
    return {"mastery_hinge": train_cfg.mastery_hinge, "mastery_loss": train_cfg.mastery_loss}


def sync(device):
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize()


def attention_flop_mapping():
    """FlopCounterMode counts SDPA only for the GPU kernels; add the CPU flash kernel."""
    import torch
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count
    aten = torch.ops.aten
    return {
        aten._scaled_dot_product_flash_attention_for_cpu:
            lambda q, k, v, *a, out_shape=None, **kw: sdpa_flop_count(q, k, v),
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
            lambda g, q, k, v, *a, out_shape=None, **kw: sdpa_backward_flop_count(g, q, k, v),
    }


# ---------------------------------------------------------------------------------------
# workers (run in subprocesses)

def _setup(spec):
    import torch
    from cmkt.train.config import build_configs
    from cmkt.data.source import DataSplits, load_training_data
    from cmkt.train.trainer import Trainer, set_threads
    set_threads(spec["threads"])
    data = load_training_data(spec["data"])
    sub = pick_students(data.train, spec["interactions"], spec["seed"])
    # the reference approach models the first release's mastery (a base read from step 1, linear
    # accumulation, MLP predictor): both sides of the comparison use that model
    overrides = variant_overrides(spec.get("variant", "cmkt"), spec["overrides"])
    model_cfg, train_cfg = build_configs(data.num_skills, "cumulative", spec["preset"], overrides,
                                         device=spec["device"], seed=spec["seed"],
                                         num_threads=spec["threads"])
    splits = DataSplits(data.name, sub, sub, None, data.num_skills, data.skill_labels, data.skill_names)
    trainer = Trainer(model_cfg, train_cfg, splits)
    return torch, trainer, sub, model_cfg, train_cfg


def _train_epoch_replica(trainer, ds, windows, groups, pad_to, phases=None, profiler_hook=None):
    """Trainer.train_epoch with another batching (and, via trainer.model, another model)."""
    import torch
    from cmkt.train import accel
    from cmkt.model import LOSS_NAMES, compute_losses
    model, dev = trainer.model, trainer.device
    model.train()
    sums = {k: 0.0 for k in ("total", "bce", *LOSS_NAMES)}
    rf = torch.profiler.record_function

    def tick(name, t0):
        if phases is not None:
            sync(dev)
            t1 = time.perf_counter()
            phases[name] = phases.get(name, 0.0) + t1 - t0
            return t1
        return t0

    for idx in groups:
        t = time.perf_counter()
        with rf("batching"):
            skills, responses, mask = collate_to(ds, windows, idx, dev, pad_to)
        t = tick("batching (collate)", t)
        with rf("forward"), accel.autocast(dev, trainer.amp_dtype):
            out = model(skills, responses)
        out = accel.float_output(out)
        t = tick("forward", t)
        with rf("losses"):
            losses = compute_losses(out, skills, responses, mask, trainer.weights, trainer.model_cfg.gain_scale,
                                    **hinge_kw(trainer.cfg))
        t = tick("losses", t)
        with rf("backward"):
            trainer.opt.zero_grad(set_to_none=True)
            losses["total"].backward()
        t = tick("backward", t)
        with rf("optimizer"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.cfg.grad_clip)
            trainer.opt.step()
        t = tick("optimizer (clip + AdamW)", t)
        with rf("bookkeeping"):
            for k in sums:
                sums[k] += float(losses[k].detach())
        tick("bookkeeping (loss .item())", t)
        if profiler_hook is not None:
            profiler_hook()
    return sums


def worker_train(spec) -> dict:
    torch, trainer, sub, model_cfg, train_cfg = _setup(spec)
    batching, mastery = VARIANTS[spec["variant"]]
    dev = trainer.device
    if mastery == "loop":
        loop = make_loop_model(model_cfg).to(dev)
        loop.load_state_dict(trainer.model.state_dict())
        # same model: the loop and the closed form agree on a real batch
        w, g, p = batch_groups(sub, "bucketed", 8, 0)
        s, r, _ = collate_to(sub, w, g[0], dev, p)
        loop.eval(), trainer.model.eval()
        with torch.no_grad():
            a, b = loop(s, r).mastery, trainer.model(s, r).mastery
        max_diff = float((a - b).abs().max())
        assert max_diff < 1e-4, f"loop and closed form disagree by {max_diff}"
        trainer.model = loop
        trainer.opt = torch.optim.AdamW(loop.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    else:
        max_diff = None

    def run_epoch(epoch):
        if spec["variant"] == "cmkt":
            return trainer.train_epoch(epoch)          # the library's own training loop
        windows, groups, pad_to = batch_groups(sub, batching, train_cfg.batch_size,
                                               train_cfg.seed * 100_003 + epoch)
        return _train_epoch_replica(trainer, sub, windows, groups, pad_to)

    windows, groups, pad_to = batch_groups(sub, batching, train_cfg.batch_size, train_cfg.seed * 100_003 + 1)
    lengths = windows.lengths
    slots = int(sum(len(g) * (pad_to or int(lengths[g].max())) for g in groups))
    n_inter = int(lengths.sum())

    # warm-up (a few batches), then measure
    rss0 = rss_mb()
    reset_ok = reset_peak_rss() if dev.type == "cpu" else False
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        mem0 = torch.cuda.memory_allocated() / 2**20
    _train_epoch_replica(trainer, sub, windows, groups[:3], pad_to)
    times = []
    for rep in range(spec["repeats"]):
        sync(dev)
        t0 = time.perf_counter()
        run_epoch(rep + 1)
        sync(dev)
        times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        mem = {"peak_mb": peak, "increase_mb": peak - mem0, "kind": "torch.cuda.max_memory_allocated"}
    else:
        peak = peak_rss_mb()
        mem = {"peak_mb": peak, "increase_mb": peak - rss0 if reset_ok else None,
               "kind": "VmHWM (peak RSS)" + ("" if reset_ok else ", not resettable")}

    # FLOPs of one epoch with this batching (the loop adds no matmul FLOPs: count with the
    # closed form, identical matmuls)
    flops = None
    if spec.get("count_flops", True):
        from torch.utils.flop_counter import FlopCounterMode
        from cmkt.model import GainAKT2, compute_losses
        counter_model = GainAKT2(model_cfg).to(dev).train()
        counter_model.load_state_dict(trainer.model.state_dict())
        with FlopCounterMode(display=False, custom_mapping=attention_flop_mapping()) as fc:
            for idx in groups:
                s, r, m = collate_to(sub, windows, idx, dev, pad_to)
                out = counter_model(s, r)
                losses = compute_losses(out, s, r, m, trainer.weights, model_cfg.gain_scale, **hinge_kw(trainer.cfg))
                losses["total"].backward()
                counter_model.zero_grad(set_to_none=True)
        flops = int(fc.get_total_flops())
    best = min(times)
    return {"variant": spec["variant"], "batching": batching, "mastery": mastery,
            "students": len(sub), "windows": len(windows), "batches": len(groups),
            "interactions": n_inter, "padded_slots": slots, "epoch_seconds": times,
            "best_seconds": best, "interactions_per_s": n_inter / best,
            "median_interactions_per_s": n_inter / statistics.median(times),
            "memory": mem, "rss_before_mb": rss0, "flops_per_epoch": flops,
            "achieved_flops": flops / best if flops else None,
            "n_params": sum(p.numel() for p in trainer.model.parameters()),
            "loop_vs_closed_form_max_diff": max_diff, "device": str(dev),
            "precision": trainer.precision}


def worker_profile(spec) -> dict:
    """Where cmkt's training time goes: per-phase wall time over one epoch, then the top
    operators over a few batches (torch.profiler)."""
    torch, trainer, sub, model_cfg, train_cfg = _setup(spec)
    windows, groups, _ = batch_groups(sub, "bucketed", train_cfg.batch_size, train_cfg.seed)
    _train_epoch_replica(trainer, sub, windows, groups[:3], None)
    phases: dict = {}
    t0 = time.perf_counter()
    _train_epoch_replica(trainer, sub, windows, groups, None, phases=phases)
    total = time.perf_counter() - t0
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trainer.device.type == "cuda" else [])
    n = min(len(groups), spec["profile_batches"])
    with profile(activities=acts) as prof:
        _train_epoch_replica(trainer, sub, windows, groups[:n], None)
    ka = prof.key_averages()
    self_total = sum(e.self_cpu_time_total for e in ka) or 1
    ops = sorted((e for e in ka if not e.key.startswith(("batching", "forward", "losses", "backward",
                                                          "optimizer", "bookkeeping", "ProfilerStep"))),
                 key=lambda e: e.self_cpu_time_total, reverse=True)
    top = [{"op": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1000,
            "share": e.self_cpu_time_total / self_total} for e in ops[:spec["top_ops"]]]
    return {"epoch_seconds": total, "phases": phases, "batches": len(groups), "profiled_batches": n,
            "top_ops": top, "table": ka.table(sort_by="self_cpu_time_total", row_limit=spec["top_ops"])}


def worker_score(spec) -> dict:
    """Score every test student and compute every metric, as `cmkt validate` does."""
    import numpy as np
    import torch
    from cmkt.runs.checkpoint import load_checkpoint
    from cmkt.train.config import build_configs
    from cmkt.data.source import load_eval_data, load_training_data
    from cmkt.analysis.metrics import compute_metrics
    from cmkt.model import GainAKT2
    from cmkt.analysis.scoring import score
    from cmkt.train.trainer import set_threads
    set_threads(spec["threads"])
    dev = torch.device(spec["device"] if spec["device"] != "auto" else
                       ("cuda" if torch.cuda.is_available() else "cpu"))
    t0 = time.perf_counter()
    if spec.get("checkpoint"):
        model, meta = load_checkpoint(spec["checkpoint"], dev)
        ds = load_eval_data(spec["data"], "test", skill_labels=meta.get("skill_labels"),
                            num_skills=model.cfg.num_skills)
        source = f"trained checkpoint {Path(meta['path']).parent.name}"
    else:
        data = load_training_data(spec["data"])
        ds = data.test
        torch.manual_seed(0)
        model_cfg, _ = build_configs(data.num_skills, "cumulative", spec["preset"], spec["overrides"])
        model = GainAKT2(model_cfg).to(dev).eval()
        source = f"freshly initialised `{spec['preset']}` model (weights do not change the time)"
    load_s = time.perf_counter() - t0
    score_t, metric_t = [], []
    for _ in range(spec["repeats"]):
        sync(dev)
        t0 = time.perf_counter()
        traj = score(model, ds, dev)
        sync(dev)
        t1 = time.perf_counter()
        metrics = compute_metrics(traj)
        t2 = time.perf_counter()
        score_t.append(t1 - t0)
        metric_t.append(t2 - t1)
    totals = [a + b for a, b in zip(score_t, metric_t)]
    return {"source": source, "students": len(ds), "interactions": int(ds.n_interactions),
            "num_skills": int(model.cfg.num_skills), "max_len": int(model.cfg.max_len),
            "load_seconds": load_s, "score_seconds": score_t, "metrics_seconds": metric_t,
            "total_seconds": totals, "best_total_seconds": min(totals),
            "median_total_seconds": float(np.median(totals)),
            "peak_rss_mb": peak_rss_mb(), "auc": metrics.get("auc"),
            "violations": {k: metrics.get(k) for k in ("monotonicity_violation_rate", "negative_gain_rate",
                                                      "bounds_violation_rate", "students_with_violation")}}


def worker_matmul(spec) -> dict:
    """Peak float32 matmul FLOP/s: best of several timed runs per size."""
    import torch
    from cmkt.train.trainer import set_threads
    set_threads(spec["threads"])
    dev = torch.device(spec["device"] if spec["device"] != "auto" else
                       ("cuda" if torch.cuda.is_available() else "cpu"))
    best = {}
    for n in spec["sizes"]:
        a = torch.randn(n, n, device=dev)
        b = torch.randn(n, n, device=dev)
        c = torch.empty(n, n, device=dev)
        torch.matmul(a, b, out=c)                  # warm-up
        reps = max(1, int(spec["target_seconds"] / max(1e-4, _time_once(torch, a, b, c, dev))))
        rates = []
        for _ in range(spec["trials"]):
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.matmul(a, b, out=c)
            sync(dev)
            rates.append(2 * n ** 3 * reps / (time.perf_counter() - t0))
        best[str(n)] = max(rates)
    return {"by_size": best, "peak_flops": max(best.values()), "device": str(dev),
            "threads": torch.get_num_threads()}


def _time_once(torch, a, b, c, dev):
    sync(dev)
    t0 = time.perf_counter()
    torch.matmul(a, b, out=c)
    sync(dev)
    return time.perf_counter() - t0


WORKERS = {"train": worker_train, "profile": worker_profile, "score": worker_score, "matmul": worker_matmul}


def run_worker(kind: str, spec: dict, timeout: int, inprocess: bool = False) -> dict:
    if inprocess:                      # smoke runs: no subprocess start-up (memory figures shared)
        print(f"[speed] {kind} {spec.get('variant', '')} (in process)", file=sys.stderr, flush=True)
        return json.loads(json.dumps(WORKERS[kind](spec), default=float))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(spec)]
    print(f"[speed] {kind} {spec.get('variant', '')}".rstrip() + " ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[speed]   done in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    return out


# ---------------------------------------------------------------------------------------
# report

def find_checkpoint(out: Path, data_name: str) -> str | None:
    """The newest cumulative checkpoint for this data set left by benchmarks/results.py."""
    cands = sorted((out / "runs").glob(f"*{data_name}*cumulative*/best.safetensors"),
                   key=lambda p: p.stat().st_mtime, reverse=True) if (out / "runs").exists() else []
    return str(cands[0].parent) if cands else None


def report(res: dict) -> str:
    info, cfg = res["machine"], res["config"]
    tr = {r["variant"]: r for r in res["train"]}
    ref, ours = tr.get("reference"), tr.get("cmkt")
    peak = res["matmul"]["peak_flops"]
    lines = [f"Measured {info['date']} on {machine_line(info)}.",
             f"Device: {res['device']}. Command: `{res['command']}`", ""]
    m = ref and ours
    if m:
        ratio = ours["interactions_per_s"] / ref["interactions_per_s"]
        lines += [f"**Training throughput: cmkt {ours['interactions_per_s']:,.0f} interactions/s vs the reference "
                  f"approach {ref['interactions_per_s']:,.0f} interactions/s: {ratio:.1f}x** "
                  f"(target >= 10x: {'met' if ratio >= 10 else 'not met'}; the first release's >= 5x: "
                  f"{'met' if ratio >= 5 else 'not met'}).", ""]
    lines += [f"Training: `{cfg['preset']}` model size with max_len {REF_LEN} for every variant "
              f"({ours['n_params'] if ours else res['train'][0]['n_params']:,} parameters, same initial weights), "
              f"one epoch over the same {res['train'][0]['students']:,} students / "
              f"{res['train'][0]['interactions']:,} interactions (a seeded subset of `{cfg['data_name']}` train), "
              f"batch size {cfg['batch_size']}, best of {cfg['repeats']} epochs after a 3-batch warm-up; "
              f"interactions/s = real (unpadded) interactions / epoch seconds. The first release's model "
              f"(MLP predictor, base from step 1, linear accumulation) for every variant; `cmkt` trains it "
              f"with the preset's dropout choices (no attention dropout: the fused attention kernel; "
              f"cmkt's fast CPU dropout masks) and the default precision "
              f"({ours.get('precision', 'float32') if ours else 'float32'}; `amp=auto`, cmkt/train/accel.py), the others "
              f"with the first release's, in float32.", ""]
    rows = []
    for name in VARIANTS:
        r = tr.get(name)
        if not r:
            continue
        mem = r["memory"]
        rows.append([f"**{name}**" if name in ("reference", "cmkt") else name, r["batching"],
                     "Python loop" if r["mastery"] == "loop" else "closed form (cumsum)",
                     f"{r['padded_slots']:,}", f"{r['best_seconds']:.2f}",
                     f"{r['interactions_per_s']:,.0f}",
                     f"{r['interactions_per_s'] / ref['interactions_per_s']:.2f}x" if ref else "–",
                     f"{mem['peak_mb']:,.0f}", fmt(mem["increase_mb"], 0) if mem["increase_mb"] is not None else "–",
                     f"{r['flops_per_epoch'] / 1e9:,.1f}" if r["flops_per_epoch"] else "–",
                     f"{r['achieved_flops'] / 1e9:,.2f}" if r["achieved_flops"] else "–",
                     f"{100 * r['achieved_flops'] / peak:.2f}%" if r["achieved_flops"] else "–"])
    lines.append(md_table(["variant", "batching", "cumulative mastery", "padded steps", "epoch s",
                           "interactions/s", "vs reference", "peak RSS MB", "training memory MB",
                           "GFLOP / epoch", "achieved GFLOP/s", "of matmul peak"], rows))
    if cfg.get("inprocess"):
        lines += ["", "(Run in one process: the memory figures are not per variant.)"]
    lines += ["", "Training memory = peak resident set during the epochs minus the resident set just before "
              "(process peak RSS beside it; on a GPU: peak allocated). FLOPs: forward + backward of every "
              "batch, counted with `torch.utils.flop_counter.FlopCounterMode` (matmuls, linear layers and "
              "attention; elementwise work is not counted), so padded steps count as work done.", ""]
    mm = res["matmul"]
    lines += [f"Matmul peak (float32 `torch.matmul`, {mm['threads']} threads, best of "
              f"{cfg['matmul_trials']} timed runs): " +
              ", ".join(f"n={k}: {v / 1e9:,.1f} GFLOP/s" for k, v in mm["by_size"].items()) +
              f"; peak used above: **{peak / 1e9:,.1f} GFLOP/s**.", ""]
    sc = res["score"]
    ok = sc["best_total_seconds"] < 10
    lines += [f"**Scoring: every {cfg['score_data_name']} test student ({sc['students']:,} students, "
              f"{sc['interactions']:,} interactions) scored and all metrics computed in "
              f"{sc['best_total_seconds']:.2f} s** (best of {len(sc['total_seconds'])}; median "
              f"{sc['median_total_seconds']:.2f} s; target < 10 s: {'met' if ok else 'not met'}).", ""]
    lines.append(md_table(["phase", "seconds (best run)"], [
        ["read the data + load the model (once)", f"{sc['load_seconds']:.2f}"],
        ["score (model forward over every window, mastery chained)", f"{min(sc['score_seconds']):.2f}"],
        ["all metrics (AUC, accuracy, violations, correlations)", f"{min(sc['metrics_seconds']):.2f}"],
        ["**score + metrics**", f"**{sc['best_total_seconds']:.2f}**"]]))
    lines += ["", f"Model: {sc['source']}, max_len {sc['max_len']}; peak RSS {sc['peak_rss_mb']:,.0f} MB.", ""]
    pr = res.get("profile")
    if pr:
        tot = sum(pr["phases"].values()) or 1
        lines += [f"**Where cmkt's training time goes** (one epoch of the same subset, "
                  f"{pr['batches']} batches, {pr['epoch_seconds']:.2f} s, each phase timed "
                  f"{'with a device sync' if res['device'] == 'cuda' else 'on the CPU'}):", ""]
        lines.append(md_table(["phase", "seconds", "share"],
                              [[k, f"{v:.2f}", f"{100 * v / tot:.1f}%"]
                               for k, v in sorted(pr["phases"].items(), key=lambda kv: -kv[1])]))
        lines += ["", f"Top operators by self CPU time (torch.profiler over {pr['profiled_batches']} batches):", ""]
        lines.append(md_table(["operator", "calls", "self CPU ms", "share"],
                              [[f"`{o['op']}`", o["calls"], f"{o['self_cpu_ms']:.1f}", f"{100 * o['share']:.1f}%"]
                               for o in pr["top_ops"]]))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help="training data for the throughput runs "
                   "(default ../shared/data/assist2015)")
    p.add_argument("--score-data", default=None, help="data whose test split is scored "
                   "(default: the --data folder)")
    p.add_argument("--checkpoint", default=None, help="a run or checkpoint to score (default: the newest "
                   "assist2015 cumulative run of benchmarks/results.py, else a freshly initialised model)")
    p.add_argument("--preset", default="quick", help="model size (default quick)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a preset value")
    p.add_argument("--interactions", type=int, default=50_000,
                   help="training interactions per epoch for every variant (default 50,000)")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per variant (best is kept; a quick-size epoch is under a second, so 5)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default benchmarks/out)")
    p.add_argument("--update-docs", action="store_true", help="rewrite the speed section of docs/RESULTS.md")
    p.add_argument("--docs-tag", default="speed", help="which marked section of docs/RESULTS.md "
                   "--update-docs rewrites (default speed; e.g. speed-standard)")
    p.add_argument("--quick", action="store_true", help="tiny smoke run on simulated data, in one process")
    p.add_argument("--inprocess", action="store_true", help="run every measurement in this process "
                   "(faster start; peak memory is then shared between measurements)")
    p.add_argument("--report", metavar="SPEED_JSON", help="measure nothing: re-render the tables of an "
                   "earlier run's speed.json (with --update-docs: into docs/RESULTS.md)")
    a = p.parse_args(argv)

    if a.report:
        text = report(json.loads(Path(a.report).read_text()))
        print(text)
        if a.update_docs:
            update_doc_section(a.docs_tag, text)
        return 0
    if a.worker:
        kind, spec = a.worker
        print(json.dumps(WORKERS[kind](json.loads(spec)), default=float))
        return 0

    overrides = {}
    for item in a.set:
        k, eq, v = item.partition("=")
        if not eq:
            p.error(f"--set {item!r}: expected KEY=VALUE")
        overrides[k.strip()] = v.strip()
    if a.quick:
        data = a.data or "sim:students=60,skills=6"
        overrides = {"d_model": "16", "n_heads": "2", "d_ff": "32", **overrides}
        interactions, repeats, sizes, trials, target_s, prof_b = min(a.interactions, 1500), 1, [128], 1, 0.05, 2
        timeout = 120
        a.inprocess = True
    else:
        data = a.data or str(SHARED_DATA / "assist2015")
        interactions, repeats, sizes, trials, target_s, prof_b = a.interactions, a.repeats, [1024, 2048], 5, 1.0, 20
        timeout = 1800
    score_data = a.score_data or data
    out = Path(a.out)
    from cmkt.data.source import data_name
    from cmkt.train.presets import PRESETS
    checkpoint = a.checkpoint if a.checkpoint else (None if a.quick else find_checkpoint(out, data_name(score_data)))
    if checkpoint:
        print(f"[speed] scoring checkpoint {checkpoint}", file=sys.stderr)
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s) {bad}; choose from {list(VARIANTS)}")
    if a.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            print("speed.py: --device cuda, but no CUDA GPU is available", file=sys.stderr)
            return 2

    info = machine_info()
    base = {"data": data, "preset": a.preset, "overrides": overrides, "threads": a.threads,
            "device": a.device, "seed": a.seed}
    t_start = time.perf_counter()
    res = {"machine": info, "command": command_line(), "device": a.device,
           "config": {"data": data, "data_name": data_name(data), "preset": a.preset, "overrides": overrides,
                      "interactions": interactions, "repeats": repeats, "max_len": REF_LEN,
                      "batch_size": int(overrides.get("batch_size", PRESETS[a.preset]["batch_size"])),
                      "matmul_trials": trials, "score_data_name": data_name(score_data),
                      "inprocess": bool(a.inprocess)}}
    res["matmul"] = run_worker("matmul", dict(base, sizes=sizes, trials=trials, target_seconds=target_s), timeout, a.inprocess)
    res["train"] = [run_worker("train", dict(base, variant=v, interactions=interactions, repeats=repeats),
                               timeout, a.inprocess) for v in variants]
    res["score"] = run_worker("score", dict(base, data=score_data, checkpoint=checkpoint,
                                            repeats=1 if a.quick else 3), timeout, a.inprocess)
    if not a.no_profile:
        res["profile"] = run_worker("profile", dict(base, interactions=interactions, profile_batches=prof_b,
                                                    top_ops=12), timeout, a.inprocess)
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    res["wall_seconds"] = time.perf_counter() - t_start
    text = report(res)
    write_json(out / "speed.json", res)
    write_text(out / "speed.md", text)
    print(text)
    print(f"[speed] wrote {out / 'speed.json'} and {out / 'speed.md'} "
          f"({res['wall_seconds']:.0f} s)", file=sys.stderr)
    if a.update_docs:
        update_doc_section(a.docs_tag, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
