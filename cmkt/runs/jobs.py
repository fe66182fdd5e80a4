"""A small jobs API over run folders: start runs as separate processes, list, cancel, delete.

A started run is its own process in its own session: it survives the caller (a page reload,
a restarted dashboard) and is driven only through its run folder.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cmkt.io import read_json, write_json_atomic
from cmkt.runs.folder import (ACTIVE, CANCEL, CONFIG, LOG, RESULTS, STATUS, RunError, create_run, now_iso,
                              pid_alive, proc_start_time, read_config, read_metrics, read_status, run_path)
from cmkt.runs.checkpoint import BEST

DEFAULT_RUNS_DIR = "runs"


@dataclass
class RunInfo:
    """One row of the runs table."""

    name: str
    path: Path
    state: str
    mode: str | None
    preset: str | None
    data: str | None                  # the data set's name ("sim", "assist2015")
    data_spec: str | None             # what --data was ("sim:...", a file or folder path)
    epoch: int
    epochs: int | None
    best_val_auc: float | None
    test_auc: float | None
    violations: float | None          # students_with_violation of the best epoch
    created: str | None
    started: str | None
    finished: str | None
    error: str | None
    pair: str | None
    has_checkpoint: bool
    status: dict = field(default_factory=dict)
    train_seconds: float | None = None    # results.json: training time (epochs, validation, stack)


def runs_dir_default() -> Path:
    return Path(os.environ.get("CMKT_RUNS_DIR", DEFAULT_RUNS_DIR))


def start_run(runs_dir=None, **request) -> Path:
    """Create a run folder and train it in a detached background process. Returns the folder.
    request: data, mode, preset, epochs, overrides, seed, device, name, pair_id."""
    runs_dir = Path(runs_dir or runs_dir_default())
    path = create_run(runs_dir, **request)
    launch(path)
    return path


def launch(run_dir) -> int:
    """Start (or resume) a prepared run in its own process and session; returns its pid."""
    run_dir = Path(run_dir)
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("CMKT_PROGRESS", None)
    with open(run_dir / LOG, "ab") as log:
        proc = subprocess.Popen(launch_command(run_dir),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=os.getcwd())
    write_json_atomic(run_dir / "launcher.json", {"pid": proc.pid, "proc_start": proc_start_time(proc.pid),
                                                  "launched": now_iso()})
    _reap_later(proc)
    return proc.pid


def launch_command(run_dir) -> list[str]:
    """`cmkt train --resume RUN`, through torchrun with one process per GPU when the run's
    device is auto/cuda and the machine has several GPUs (cmkt.runs.torchrun.train_command)."""
    from cmkt.runs.torchrun import train_command
    device = ((read_json(Path(run_dir) / CONFIG, {}) or {}).get("train") or {}).get("device", "auto")
    return train_command(run_dir, device, python=sys.executable)


def _reap_later(proc: subprocess.Popen):
    """Collect the child's exit status in the background so it never lingers as a zombie."""
    import threading
    threading.Thread(target=proc.wait, daemon=True).start()


def run_info(path) -> RunInfo:
    path = Path(path)
    try:
        cfg = read_config(path)
    except RunError:
        cfg = {}
    st = read_status(path)
    metrics = read_metrics(path)
    best_epoch = st.get("best_epoch")
    best = next((m for m in metrics if m.get("epoch") == best_epoch), None)
    if best is None and metrics:
        best = max(metrics, key=lambda m: (m.get("val_auc") or -1))
    results = read_json(path / RESULTS, {}) or {}
    train = cfg.get("train", {})
    model = cfg.get("model", {})
    data = (cfg.get("data") or {}).get("name") or train.get("data")
    return RunInfo(
        name=path.name, path=path, state=st.get("state", "failed"), mode=model.get("mode"),
        preset=train.get("preset"), data=data, data_spec=train.get("data"), epoch=int(st.get("epoch") or 0),
        epochs=(train.get("epochs") or 0) + (train.get("mastery_epochs") or 0) or None,  # at most, mastery phase too
        best_val_auc=(best or {}).get("val_auc"), test_auc=((results.get("test") or {}).get("auc")),
        violations=(best or {}).get("students_with_violation"), created=st.get("created") or cfg.get("created"),
        started=st.get("started"), finished=st.get("finished"), error=st.get("error"), pair=cfg.get("pair"),
        has_checkpoint=(path / BEST).exists(), status=st, train_seconds=results.get("train_seconds"))


def list_runs(runs_dir=None) -> list[RunInfo]:
    """Every run folder under runs_dir, newest first."""
    runs_dir = Path(runs_dir or runs_dir_default())
    if not runs_dir.is_dir():
        return []
    out = [run_info(p) for p in runs_dir.iterdir() if p.is_dir() and (p / CONFIG).exists()]
    return sorted(out, key=lambda r: (r.created or "", r.name), reverse=True)


def cancel_run(run_dir, wait: float = 0.0) -> dict:
    """Ask a run to stop: a cancel flag (checked before every batch) plus SIGTERM.
    With wait > 0, wait that long, then SIGKILL a process that ignored it."""
    run_dir = Path(run_dir)
    st = read_status(run_dir)
    if st.get("state") not in ACTIVE:
        return st
    write_json_atomic(run_dir / CANCEL, {"requested": now_iso()})
    pid = st.get("pid") or (read_json(run_dir / "launcher.json", {}) or {}).get("pid")
    started = st.get("proc_start") or (read_json(run_dir / "launcher.json", {}) or {}).get("proc_start")
    if not pid or not pid_alive(pid, started):
        st = dict(read_json(run_dir / STATUS, {}) or {}, state="cancelled", finished=now_iso())
        write_json_atomic(run_dir / STATUS, st)
        return st
    try:
        os.kill(int(pid), signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + wait
    while wait > 0 and time.monotonic() < deadline and pid_alive(pid, started):
        time.sleep(0.1)
    if wait > 0 and pid_alive(pid, started):
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        st = dict(read_json(run_dir / STATUS, {}) or {}, state="cancelled", finished=now_iso())
        write_json_atomic(run_dir / STATUS, st)
    return read_status(run_dir)


def delete_run(runs_dir, name: str) -> None:
    """Remove a run folder (only inside runs_dir, never an active run)."""
    path = run_path(runs_dir, name)
    if not (path / CONFIG).exists() and not (path / STATUS).exists():
        raise RunError(f"no run named {name!r} in {runs_dir}")
    if read_status(path).get("state") in ACTIVE:
        raise RunError(f"run {name!r} is still running: cancel it first")
    shutil.rmtree(path)


def wait_for(run_dir, states=("finished", "failed", "cancelled"), timeout: float = 600) -> dict:
    """Poll status.json until the run reaches one of `states` (for scripts and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        st = read_status(run_dir)
        if st.get("state") in states or time.monotonic() > deadline:
            return st
        time.sleep(0.2)
