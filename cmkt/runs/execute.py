"""Executing a prepared run folder in this process: the trainer's callbacks write progress,
the best checkpoint, the resume state and the results into the folder (cmkt.runs.folder)."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import torch

from cmkt.data.source import load_training_data
from cmkt.errors import Cancelled, CmktError, RunError
from cmkt.io import atomic_target, read_json, write_json_atomic, write_text_atomic
from cmkt.model import count_parameters
from cmkt.runs.checkpoint import BEST, save_checkpoint
from cmkt.runs.folder import (CANCEL, CONFIG, METRICS, RESULTS, RESUME, STATUS, now_iso, proc_start_time,
                              read_config)
from cmkt.runs.threads import share_cores
from cmkt.runs.worker import execute_worker
from cmkt.train import distributed
from cmkt.train.config import TrainConfig
from cmkt.train.kinds import config_from_dict, config_to_dict, kind_of
from cmkt.train.fitted import make_trainer
from cmkt.train.trainer import TrainCallbacks, Trainer


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
    if not distributed.is_main():          # torchrun: the other ranks train in step, write nothing
        execute_worker(run_dir)
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
        try:
            train_cfg = TrainConfig.from_dict(train_d)
        except ValueError as e:
            raise RunError(f"{run_dir}: {e}") from None
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
    return threading.current_thread() is threading.main_thread()
