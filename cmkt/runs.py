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
import signal
import time
from pathlib import Path

import torch

from .checkpoint import BEST, save_checkpoint
from .config import build_configs
from .datasource import data_name, load_training_data
from .errors import CmktError
from .io import read_json, read_jsonl, write_json_atomic, write_text_atomic, atomic_target
from .model import count_parameters
from .models import config_from_dict, config_to_dict, kind_of
from .config import TrainConfig
from .threads import share_cores
from .trainer import Cancelled, TrainCallbacks, Trainer, make_trainer

CONFIG, STATUS, METRICS, RESULTS, RESUME, CANCEL, LOG = (
    "config.json", "status.json", "metrics.jsonl", "results.json", "resume.pt", "cancel", "log.txt")
STATES = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE = ("queued", "running")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RunError(CmktError):
    """A run folder problem the user can fix (bad name, missing run, run still active)."""


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


# ---- executing a run ------------------------------------------------------------------

class RunFolderCallbacks(TrainCallbacks):
    """Writes progress into the run folder and polls the cancel flag / SIGTERM."""

    def __init__(self, run_dir: Path, status: dict, trainer_ref: list, echo=None):
        self.run_dir, self.status, self.trainer_ref, self.echo = run_dir, status, trainer_ref, echo
        self.stop = False
        self._last = 0.0

    def should_stop(self) -> bool:
        return self.stop or (self.run_dir / CANCEL).exists()

    def on_batch(self, epoch, batch, n_batches, loss):
        if self.echo:
            self.echo.on_batch(epoch, batch, n_batches, loss)
        now = time.monotonic()
        if now - self._last > 1.0 or batch == n_batches:
            self._last = now
            self.status.update(epoch=epoch - 1, current_epoch=epoch, batch=batch, n_batches=n_batches,
                               train_loss=loss, updated=now_iso())
            write_json_atomic(self.run_dir / STATUS, self.status)

    def on_epoch(self, record, is_best):
        trainer = self.trainer_ref[0]
        share_cores(self.run_dir, trainer.cfg.num_threads)
        # order: resume state first (it holds the history and the best weights), then the
        # files derived from it, so a kill between two writes loses nothing
        save_resume(self.run_dir, trainer)
        _write_history(self.run_dir, trainer.history)
        if is_best:
            save_checkpoint(trainer.eval_model, self.run_dir / BEST, _ckpt_meta(self.run_dir, trainer, record))
        self.status.update(epoch=record["epoch"], best_epoch=trainer.best_epoch,
                           best_val_auc=_best_auc(trainer), updated=now_iso())
        write_json_atomic(self.run_dir / STATUS, self.status)
        if self.echo:
            self.echo.on_epoch(record, is_best)


def _best_auc(trainer):
    return next((r.get("val_auc") for r in trainer.history if r["epoch"] == trainer.best_epoch), None)


def _write_history(run_dir: Path, history: list[dict]):
    import json
    text = "".join(json.dumps(r, default=float) + "\n" for r in history)
    write_text_atomic(run_dir / METRICS, text)


def _ckpt_meta(run_dir: Path, trainer: Trainer, record: dict) -> dict:
    cfg = read_json(run_dir / CONFIG, {})
    return {"run": run_dir.name, "epoch": record["epoch"], "data": trainer.cfg.data,
            "data_name": trainer.data.name, "preset": trainer.cfg.preset,
            "skill_labels": trainer.data.skill_labels, "skill_names": trainer.data.skill_names,
            "train_config": trainer.cfg.to_dict(), "pair": cfg.get("pair"),
            "kind": kind_of(trainer.model_cfg),
            "metrics": {k: v for k, v in record.items() if not isinstance(v, (list, dict))}}


def save_resume(run_dir: Path, trainer: Trainer):
    with atomic_target(run_dir / RESUME) as tmp:
        torch.save(trainer.state_dict(), str(tmp))


def execute_run(run_dir, echo: TrainCallbacks | None = None) -> dict:
    """Run (or continue) a prepared run folder in this process. Returns results.json's content.
    Raises Cancelled when cancelled, CmktError on bad input; status.json says which."""
    run_dir = Path(run_dir)
    from . import distributed
    if not distributed.is_main():          # torchrun: the other ranks train in step, write nothing
        distributed.execute_worker(run_dir)
        return {}
    cfg = read_config(run_dir)
    old = read_json(run_dir / STATUS, {}) or {}
    if old.get("state") == "finished":
        raise RunError(f"{run_dir}: this run has already finished")
    status = {"state": "running", "pid": os.getpid(), "proc_start": proc_start_time(os.getpid()),
              "started": old.get("started") or now_iso(), "epoch": old.get("epoch", 0),
              "created": old.get("created"), "resumed": (run_dir / RESUME).exists() or None}
    write_json_atomic(run_dir / STATUS, status)
    (run_dir / CANCEL).unlink(missing_ok=True)
    trainer_ref: list = [None]
    callbacks = RunFolderCallbacks(run_dir, status, trainer_ref, echo)

    def on_term(signum, frame):
        callbacks.stop = True
        if trainer_ref[0] is None:        # still reading data: stop right away
            raise Cancelled()
    previous = signal.signal(signal.SIGTERM, on_term) if _main_thread() else None
    try:
        train_d = dict(cfg["train"])
        train_cfg = TrainConfig(**train_d)
        data = load_training_data(train_cfg.data, train_cfg.valid_fraction, train_cfg.seed,
                                  train_cfg.sim_students, train_cfg.sim_skills)
        model_d = dict(cfg["model"], num_skills=data.num_skills)
        model_cfg = config_from_dict(model_d)
        if cfg["model"].get("num_skills") != data.num_skills or "data" not in cfg:
            cfg["model"] = config_to_dict(model_cfg)
            cfg["data"] = {"spec": train_cfg.data, "name": data.name, "num_skills": data.num_skills,
                           "skill_labels": data.skill_labels, "skill_names": data.skill_names,
                           "n_train_students": len(data.train), "n_valid_students": len(data.valid),
                           "n_test_students": len(data.test) if data.test is not None else 0}
            write_json_atomic(run_dir / CONFIG, cfg)
        trainer = make_trainer(model_cfg, train_cfg, data, callbacks)
        share_cores(run_dir, train_cfg.num_threads)          # runs side by side share the cores
        if (run_dir / RESUME).exists():
            trainer.load_state_dict(torch.load(str(run_dir / RESUME), map_location="cpu", weights_only=True))
            _write_history(run_dir, trainer.history)
            if trainer.best_state is not None:
                best = trainer.best_model()
                rec = next(r for r in trainer.history if r["epoch"] == trainer.best_epoch)
                save_checkpoint(best, run_dir / BEST, _ckpt_meta(run_dir, trainer, rec))
        trainer_ref[0] = trainer
        status.update(n_params=count_parameters(trainer.model), device=str(trainer.device),
                      precision=trainer.precision)
        result = trainer.fit()
        best = trainer.best_model()
        results = {"run": run_dir.name, "mode": model_cfg.mode, "kind": kind_of(model_cfg), "preset": train_cfg.preset,
                   "data": train_cfg.data, "data_name": data.name, "best_epoch": result.best_epoch,
                   "epochs_run": trainer.epoch, "stopped_early": result.stopped_early,
                   "train_seconds": result.seconds, "n_params": count_parameters(best),
                   "device": str(trainer.device), "precision": trainer.precision,
                   "valid": {k: v for k, v in result.best_valid.items()}, "test": None}
        if data.test is not None:
            test = trainer.evaluate(best, data.test)
            test.pop("loss", None)
            results["test"] = test
        write_json_atomic(run_dir / RESULTS, results)
        status.update(state="finished", finished=now_iso(), epoch=trainer.epoch,
                      best_epoch=result.best_epoch, best_val_auc=result.best_valid.get("val_auc"))
        write_json_atomic(run_dir / STATUS, status)
        return results
    except (Cancelled, KeyboardInterrupt):
        status.update(state="cancelled", finished=now_iso())
        write_json_atomic(run_dir / STATUS, status)
        (run_dir / CANCEL).unlink(missing_ok=True)
        raise Cancelled() from None
    except BaseException as e:
        msg = str(e) if isinstance(e, CmktError) else f"{type(e).__name__}: {e}"
        status.update(state="failed", finished=now_iso(), error=msg or type(e).__name__)
        write_json_atomic(run_dir / STATUS, status)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()
