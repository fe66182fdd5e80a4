"""Threads per training run on a small machine: runs started side by side share the cores.

A run that may use every core (num_threads 0 and no OMP_NUM_THREADS set) takes
cores // active_runs threads, active_runs counting itself and every other run of the same runs
folder whose process is alive; it looks again after every epoch, so a run that started alone
gives cores back when another starts (and takes them again when that one ends). Two runs on two
cores then use one thread each instead of fighting over four.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def active_runs(runs_dir, self_dir=None) -> int:
    """Live runs in runs_dir (queued or running, process alive), counting self_dir once."""
    from cmkt.runs.folder import ACTIVE, CONFIG, read_status
    base = Path(runs_dir)
    me = Path(self_dir).resolve() if self_dir is not None else None
    n = 0
    try:
        entries = list(base.iterdir())
    except OSError:
        entries = []
    for p in entries:
        if me is not None and p.resolve() == me:
            continue
        if p.is_dir() and (p / CONFIG).exists():
            st = read_status(p)
            if st.get("state") == "running" and st.get("state") in ACTIVE:
                n += 1
    return n + (1 if me is not None else 0)


def fair_threads(runs_dir, self_dir=None, n_cores: int | None = None) -> int:
    return max(1, (n_cores or cores()) // max(1, active_runs(runs_dir, self_dir)))


def share_cores(run_dir, num_threads: int = 0) -> int | None:
    """Set this process's torch threads to its fair share; None (and nothing set) when the run
    or the environment fixes the thread count."""
    if num_threads or "OMP_NUM_THREADS" in os.environ:
        return None
    run_dir = Path(run_dir)
    n = fair_threads(run_dir.parent, run_dir)
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n
