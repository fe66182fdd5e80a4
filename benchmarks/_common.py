"""Helpers shared by the benchmark scripts: machine description, output files, docs update."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:          # run from a fresh clone without `pip install -e .`
    sys.path.insert(0, str(REPO))
SHARED_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "benchmarks" / "out"
RESULTS_DOC = REPO / "docs" / "RESULTS.md"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def cpu_probe_ms() -> float:
    """Milliseconds one core takes for a fixed piece of pure-Python work (median of 9). It reads the
    machine's state at the time of a measurement: steady while this 2-core machine is idle and
    in its usual state, higher when the host gives its cores less (figures taken then are lower
    for that reason alone)."""
    times = []
    for _ in range(9):
        t0 = time.perf_counter()
        x = 0
        for i in range(400_000):
            x += i * i % 7
        times.append(time.perf_counter() - t0)
    return round(1000 * sorted(times)[4], 2)


def cpu_times() -> dict | None:
    """The machine's CPU time counters from /proc/stat (jiffies): busy, idle and steal (time the
    host gave this machine's cores to others)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    steal = v[7] if len(v) > 7 else 0
    return {"busy": sum(v[:3]) + sum(v[5:7]), "idle": v[3] + v[4], "steal": steal}


def steal_share(before: dict | None, after: dict | None) -> float | None:
    """The share of the cores' time taken by the host (steal) between two cpu_times()."""
    if not before or not after:
        return None
    d = {k: after[k] - before[k] for k in after}
    total = d["busy"] + d["idle"] + d["steal"]
    return round(d["steal"] / total, 4) if total > 0 else None


def machine_info() -> dict:
    import torch
    info = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "cpu": cpu_model(), "cores": os.cpu_count(), "mem_gib": mem_total_gib(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                            capture_output=True, text=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "cmkt"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["git_dirty"] = bool(dirty)
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def command_line() -> str:
    """The command as the user typed it (relative to the repository root)."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPO)
    except ValueError:
        pass
    return "python " + " ".join(shlex.quote(a) for a in [str(script), *sys.argv[1:]])


def machine_line(info: dict) -> str:
    gpu = info.get("gpu") or "no GPU"
    load = info.get("loadavg_start")
    end = info.get("loadavg_end")
    load_s = f"load average at start {load[0]:.2f}" if load else ""
    if end:
        load_s += f", at end {end[0]:.2f}"
    commit = info.get("git_commit")
    code = f"cmkt at commit {commit}" + (" with uncommitted changes in cmkt/" if info.get("git_dirty") else "") \
        if commit else "cmkt (no git commit)"
    return (f"{info['cpu']}, {info['cores']} cores, {info.get('mem_gib')} GiB RAM, {gpu}; "
            f"Python {info['python']}, torch {info['torch']} ({info['torch_threads']} threads); {code}; {load_s}")


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def update_doc_section(tag: str, text: str, doc: Path = RESULTS_DOC) -> bool:
    """Replace the text between <!-- TAG:begin --> and <!-- TAG:end --> in docs/RESULTS.md."""
    if not doc.exists():
        print(f"[docs] {doc} does not exist: not updated", file=sys.stderr)
        return False
    src = doc.read_text()
    pat = re.compile(rf"(<!-- {tag}:begin -->\n).*?(<!-- {tag}:end -->)", re.S)
    if not pat.search(src):
        print(f"[docs] no <!-- {tag}:begin/end --> markers in {doc}: not updated", file=sys.stderr)
        return False
    write_text(doc, pat.sub(lambda m: m.group(1) + text.rstrip() + "\n" + m.group(2), src, count=1))
    print(f"[docs] updated the {tag} section of {doc}", file=sys.stderr)
    return True


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:.{digits}f}"
    return str(v)


def md_table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def pick_students(ds, interactions: int, seed: int):
    """A seeded subset of students holding at least `interactions` interactions."""
    import numpy as np
    order = np.random.default_rng(seed).permutation(len(ds))
    total, rows = 0, []
    for r in order:
        rows.append(int(r))
        total += len(ds.skills[r])
        if total >= interactions:
            break
    return ds.subset(sorted(rows))


# ---- timing the real trainer and the real command --------------------------------------------

_RSS_WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
                "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
                "sys.exit(r.returncode)")


def run_command(argv: list[str], timeout: int = 3600) -> dict:
    """Run a command to its end: wall seconds, its peak resident set (MB; a wrapper reads the
    child's rusage), exit code and the last of its output."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    lines = proc.stderr.strip().splitlines()
    rss = float(lines[-1].split()[1]) / 1024 if lines and lines[-1].startswith("peak_rss_kb") else None
    return {"argv": [str(a) for a in argv], "seconds": seconds, "returncode": proc.returncode,
            "stdout": proc.stdout[-2000:], "stderr": "\n".join(lines[:-1])[-2000:], "peak_rss_mb": rss}


def train_epochs(data: str, mode: str, preset: str, epochs: int = 2, overrides: dict | None = None,
                 seed: int = 0, threads: int = 0, interactions: int | None = None) -> dict:
    """Train `epochs` main-phase epochs of the model `cmkt train` builds for (mode, preset), through
    the real Trainer and its callbacks (no copy of its loop), then stop it as a cancel would. Per
    epoch: the seconds metrics.jsonl records (training and validation) and the training part alone
    (first batch to last). `interactions`: a seeded subset of the training students."""
    import torch
    from cmkt.data.source import DataSplits, load_training_data
    from cmkt.errors import Cancelled
    from cmkt.train.config import build_configs
    from cmkt.train.fitted import make_trainer
    from cmkt.train.trainer import TrainCallbacks
    splits = load_training_data(data, seed=seed)
    if interactions:
        sub = pick_students(splits.train, interactions, seed)
        splits = DataSplits(splits.name, sub, splits.valid, splits.test, splits.num_skills,
                            splits.skill_labels, splits.skill_names)
    mc, tc = build_configs(splits.num_skills, mode, preset, {k: str(v) for k, v in (overrides or {}).items()},
                           seed=seed, num_threads=threads, device="cpu")
    epochs_seen: list[dict] = []

    class Timer(TrainCallbacks):
        start = None

        def on_batch(self, epoch, batch, n_batches, loss):
            if batch == 1:
                self.start = time.perf_counter()
            if batch == n_batches:
                self.train_seconds = time.perf_counter() - self.start

        def on_epoch(self, record, is_best):
            epochs_seen.append({"epoch": record["epoch"], "seconds": record["seconds"],
                                "train_seconds": getattr(self, "train_seconds", None),
                                "val_auc": record.get("val_auc")})

        def should_stop(self):
            return len(epochs_seen) >= epochs

    trainer = make_trainer(mc, tc, splits, Timer())
    try:
        trainer.fit()
    except Cancelled:
        pass
    trainer.callbacks = TrainCallbacks()          # the trainer can go on (e.g. to count FLOPs)
    n = sum(len(s) for s in splits.train.skills)
    return {"mode": mode, "preset": preset, "epochs": epochs_seen, "interactions": n,
            "n_params": sum(p.numel() for p in trainer.model.parameters()), "precision": trainer.precision,
            "threads": torch.get_num_threads(), "trainer": trainer}
