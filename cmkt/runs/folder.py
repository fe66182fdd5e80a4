"""Run folders: the contract between the trainer and the dashboard (DESIGN.md).

config.json   everything to rebuild the model and repeat the run
status.json   state queued/running/finished/failed/cancelled, epoch, progress, pid, error
metrics.jsonl one line per finished epoch
best.safetensors  the best epoch's weights (loadable without executing code)
results.json  final metrics (best validation epoch, test split when there is one)
resume.pt     plain-tensor state after the last finished epoch (for --resume)
Every file is written atomically.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path


from cmkt.data.source import data_name, load_training_data
from cmkt.errors import RunError
from cmkt.io import read_json, read_jsonl, write_json_atomic
from cmkt.train.config import build_configs
from cmkt.train.kinds import config_to_dict

CONFIG, STATUS, METRICS, RESULTS, RESUME, CANCEL, LOG = (
    "config.json", "status.json", "metrics.jsonl", "results.json", "resume.pt", "cancel", "log.txt")
STATES = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE = ("queued", "running")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def check_run_name(name: str) -> str:
    """Run names are single folder names: no '..', no separators, no absolute paths."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise RunError(f"invalid run name {name!r}: use letters, digits, '.', '_' and '-' only")
    return name


def run_path(runs_dir, name: str) -> Path:
    """The folder of run `name` inside runs_dir, refusing anything that would escape it."""
    base = Path(runs_dir).resolve()
    path = (base / check_run_name(name)).resolve()
    if path.parent != base:
        raise RunError(f"invalid run name {name!r}")
    return path


def new_run_name(mode: str, preset: str, data: str) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stamp}-{data}-{mode}-{preset}").strip("-")
    return base[:120]


def proc_start_time(pid: int) -> str | None:
    """Kernel start time of a process (to tell a live run from a reused pid)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int | None, started: str | None = None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    st = proc_start_time(int(pid))
    if st is not None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":   # zombie: exited, not reaped
                    return False
        except OSError:
            return False
    return started is None or st is None or st == started


# ---- creating and reading runs ---------------------------------------------------------

def create_run(runs_dir, data: str = "sim", mode: str = "cumulative", preset: str = "quick",
               epochs: int | None = None, overrides: dict | None = None, seed: int = 0,
               device: str = "auto", name: str | None = None, wandb: bool = False,
               pair_id: str | None = None, check_data: bool = True) -> Path:
    """Make a queued run folder with its config (num_skills is filled in when data is read).
    With check_data the data is read once first, so bad data leaves no run folder behind."""
    model_cfg, train_cfg = build_configs(1, mode, preset, overrides, epochs=epochs, seed=seed,
                                         device=device, data=data, wandb=wandb)
    if name is not None:
        check_run_name(name)
    if check_data:
        load_training_data(data, train_cfg.valid_fraction, seed, train_cfg.sim_students, train_cfg.sim_skills)
    if not data.startswith("sim"):
        data = str(Path(data).resolve())
        train_cfg.data = data
    name = check_run_name(name) if name is not None else new_run_name(mode, preset, data_name(data))
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path, suffix = run_path(runs_dir, name), 1
    while True:                     # mkdir is atomic: two runs started at once never share a folder
        try:
            path.mkdir()
            break
        except FileExistsError:
            suffix += 1
            path = run_path(runs_dir, f"{name}-{suffix}")
    model = config_to_dict(model_cfg)
    model["num_skills"] = None
    write_json_atomic(path / CONFIG, {"model": model, "train": train_cfg.to_dict(),
                                      "overrides": dict(overrides or {}), "pair": pair_id,
                                      "created": now_iso()})
    write_json_atomic(path / STATUS, {"state": "queued", "epoch": 0, "created": now_iso()})
    return path


def read_status(run_dir) -> dict:
    """status.json, with a run whose process died reported as failed (not running forever)."""
    run_dir = Path(run_dir)
    st = read_json(run_dir / STATUS, None)
    if st is None:
        return {"state": "failed", "error": "status.json is missing or unreadable", "epoch": 0}
    if st.get("state") in ACTIVE:
        pid = st.get("pid") or (read_json(run_dir / "launcher.json", {}) or {}).get("pid")
        started = st.get("proc_start") or (read_json(run_dir / "launcher.json", {}) or {}).get("proc_start")
        if pid and not pid_alive(pid, started):
            st = dict(st, state="failed", error="the training process died (killed or crashed); "
                      "resume it with: python -m cmkt train --resume " + str(run_dir))
            st["dead_pid"] = True
    return st


def read_metrics(run_dir) -> list[dict]:
    return read_jsonl(Path(run_dir) / METRICS)


def read_config(run_dir) -> dict:
    cfg = read_json(Path(run_dir) / CONFIG, None)
    if cfg is None:
        raise RunError(f"{run_dir}: not a run folder (config.json missing or unreadable)")
    return cfg
