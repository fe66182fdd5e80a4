"""Kinds fitted once rather than trained over epochs (BKT, PFA), behind the Trainer's interface,
and make_trainer: the trainer for any model kind."""
from __future__ import annotations

import math
import time

import torch

from cmkt.data.source import DataSplits
from cmkt.errors import Cancelled
from cmkt.train.config import TrainConfig
from cmkt.train.kinds import build_model, spec_of
from cmkt.train.trainer import TrainCallbacks, Trainer, TrainResult, evaluate_model, selection_score, set_threads


class FitTrainer:
    """For kinds fitted once rather than trained over epochs (BKT by EM, PFA by logistic
    regression): the same interface as Trainer, so run folders, callbacks, resume and results
    are the same. Its one 'epoch' is the fit; metrics.jsonl gets one line."""

    def __init__(self, model_cfg, train_cfg: TrainConfig, data: DataSplits,
                 callbacks: TrainCallbacks | None = None):
        self.model_cfg, self.cfg, self.data = model_cfg, train_cfg, data
        self.callbacks = callbacks or TrainCallbacks()
        self.device = torch.device("cpu")              # fitting is numpy / scikit-learn
        self.precision = "float64"                     # numpy / scikit-learn
        set_threads(train_cfg.num_threads)
        torch.manual_seed(train_cfg.seed)
        self.fit_fn = spec_of(model_cfg).fit
        self.model = build_model(model_cfg)
        self.epoch = self.best_epoch = self.bad_epochs = 0
        self.best_score = -math.inf
        self.best_state: dict | None = None
        self.history: list[dict] = []
        self.seconds = 0.0

    @property
    def eval_model(self):
        return self.model

    def state_dict(self) -> dict:
        return {"model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                "epoch": self.epoch, "best_epoch": self.best_epoch, "best_score": self.best_score,
                "best_state": self.best_state, "bad_epochs": self.bad_epochs,
                "history": self.history, "seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.epoch, self.best_epoch = int(state["epoch"]), int(state["best_epoch"])
        self.best_score, self.bad_epochs = float(state["best_score"]), int(state["bad_epochs"])
        self.best_state, self.history = state["best_state"], list(state["history"])
        self.seconds = float(state.get("seconds", 0.0))

    def best_model(self):
        model = build_model(self.model_cfg)
        model.load_state_dict(self.best_state if self.best_state is not None else self.model.state_dict())
        return model.eval()

    def evaluate(self, model, ds) -> dict:
        return evaluate_model(model, ds, self.device, self.cfg.eval_batch_size)

    def fit(self) -> TrainResult:
        if self.epoch < 1:
            t0 = time.perf_counter()
            progress = (lambda i, n, loss: self.callbacks.on_batch(1, i, n, loss))
            rec = {"epoch": 1}
            rec.update(self.fit_fn(self.model, self.data.train, should_stop=self.callbacks.should_stop,
                                   progress=progress))
            if self.callbacks.should_stop():
                raise Cancelled()
            val = self.evaluate(self.model, self.data.valid)
            rec["val_loss"], rec["val_auc"], rec["val_accuracy"] = val.pop("loss"), val.pop("auc"), val.pop("accuracy")
            rec.update(val)
            rec["seconds"] = time.perf_counter() - t0
            self.seconds += rec["seconds"]
            self.best_score, self.best_epoch, self.epoch = selection_score(rec), 1, 1
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            self.history.append(rec)
            self.callbacks.on_epoch(rec, True)
        best = self.history[0] if self.history else {}
        return TrainResult(self.best_epoch, best, list(self.history), stopped_early=False, seconds=self.seconds)


def make_trainer(model_cfg, train_cfg: TrainConfig, data: DataSplits, callbacks: TrainCallbacks | None = None):
    """The trainer for a model kind: Trainer (gradient, epochs) or FitTrainer (fitted once)."""
    cls = FitTrainer if spec_of(model_cfg).fit is not None else Trainer
    return cls(model_cfg, train_cfg, data, callbacks)
