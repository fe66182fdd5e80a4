"""The trainer: knows nothing of the UI. Progress and cancellation go through callbacks."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from cmkt.train import accel
from cmkt.train import distributed
from cmkt.train.config import TrainConfig
from cmkt.data.batching import chained_windows
from cmkt.data.source import DataSplits
from cmkt.errors import Cancelled, Diverged  # noqa: F401  (Cancelled: re-exported)
from cmkt.analysis.metrics import compute_metrics
from cmkt.model import LOSS_NAMES, compute_losses
from cmkt.train.kinds import build_model, spec_of
from cmkt.analysis.scoring import Trajectories, score


class TrainCallbacks:
    """Override what you need. should_stop is polled before every batch."""

    def on_batch(self, epoch: int, batch: int, n_batches: int, loss: float) -> None: ...

    def on_epoch(self, record: dict, is_best: bool) -> None: ...

    def should_stop(self) -> bool:
        return False


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: dict
    history: list = field(default_factory=list)
    stopped_early: bool = False
    seconds: float = 0.0


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
    return torch.device(name)


def set_threads(n: int = 0) -> None:
    """Use every core by default (torch picks physical cores; respect an explicit setting)."""
    if n > 0:
        torch.set_num_threads(n)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def valid_loss(traj: Trajectories) -> float | None:
    """Mean binary cross-entropy of the predictions on every real step."""
    if len(traj.probs) == 0:
        return None
    p = np.clip(traj.probs.astype(np.float64), 1e-7, 1 - 1e-7)
    r = traj.responses
    return float(-np.mean(r * np.log(p) + (1 - r) * np.log(1 - p)))


def selection_score(rec: dict, select_on: str = "auc") -> float:
    """Model selection (best epoch, early stopping, learning-rate plateaus): validation AUC, or with
    select_on "auc+mastery_auc" validation AUC plus mastery AUC (the model chosen for its
    prediction and for its mastery alone); minus the loss when AUC is undefined."""
    if rec.get("val_auc") is not None:
        if select_on == "auc+mastery_auc" and rec.get("mastery_auc") is not None:
            return rec["val_auc"] + rec["mastery_auc"]
        return rec["val_auc"]
    return -(rec.get("val_loss") or math.inf)


def ema_decay(cfg: TrainConfig, steps_per_epoch: int) -> float:
    """The decay of the moving average of the weights: cfg.ema, lowered where needed so that the
    average spans at most about cfg.ema_epochs epochs (1 / (1 - decay) steps); 0: no average."""
    if not cfg.ema:
        return 0.0
    if cfg.ema_epochs and steps_per_epoch:
        return min(cfg.ema, max(0.0, 1.0 - 1.0 / (cfg.ema_epochs * steps_per_epoch)))
    return cfg.ema


# the average's warm-up: its n-th update uses decay min(decay, (1 + n) / (WARMUP + n)), so that a
# short run does not keep its first, untrained weights (2 quick epochs on Synthetic-5: test AUC
# 0.722 with the plain average; docs/RESULTS.md, "Speed"), and a long one is the plain average
# once n is past a few hundred steps
EMA_WARMUP = 10


def ema_warmup_fn(decay: float):
    """multi_avg_fn for AveragedModel: an exponential moving average whose decay warms up."""
    @torch.no_grad()
    def update(averaged: list, current: list, n_averaged: torch.Tensor) -> None:
        n = float(n_averaged)
        d = min(decay, (1.0 + n) / (EMA_WARMUP + n))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        else:                                           # integer buffers: keep the latest
            for a, c in zip(averaged, current):
                a.copy_(c)
    return update


def evaluate_model(model, ds, device, batch_size: int) -> dict:
    """Every metric of a model on a data set, plus the mean cross-entropy as 'loss'."""
    traj = score(model, ds, device, batch_size)
    out = compute_metrics(traj)
    out["loss"] = valid_loss(traj)
    return out


class Trainer:
    """AdamW + ReduceLROnPlateau on validation AUC, grad-norm clipping, early stopping,
    the truly best epoch's weights kept (a deep copy)."""

    def __init__(self, model_cfg, train_cfg: TrainConfig, data: DataSplits,
                 callbacks: TrainCallbacks | None = None):
        """model_cfg: the config of any kind trained by gradient (cmkt.train.kinds: GainAKT2, DKT)."""
        self.model_cfg, self.cfg, self.data = model_cfg, train_cfg, data
        self.callbacks = callbacks or TrainCallbacks()
        self.device = distributed.local_device(pick_device(train_cfg.device))
        set_threads(train_cfg.num_threads)
        torch.manual_seed(train_cfg.seed)
        self.model = build_model(model_cfg).to(self.device)
        if getattr(model_cfg, "members", 1) > 1 and distributed.active():
            raise ValueError("an ensemble (members > 1) trains in one process; training on several "
                             "processes (torchrun) is for single models: run it without torchrun")
        # bfloat16 autocast for the training forward pass, or None (float32): cmkt/train/accel.py
        self.amp_dtype = accel.amp_dtype(self.device, train_cfg.amp, getattr(model_cfg, "d_model", None))
        self.precision = accel.precision_name(self.amp_dtype)
        self.opt = accel.make_optimizer(self.model.parameters(), train_cfg.lr, train_cfg.weight_decay, self.device)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, mode="max", factor=0.5, patience=1)
        # the interpretability losses belong to GainAKT2; a baseline learns from the prediction alone
        self.weights = train_cfg.weights() if spec_of(model_cfg).aux_losses else (0.0,) * len(LOSS_NAMES)
        self.train_windows = chained_windows(data.train, model_cfg.max_len)
        # the exponential moving average of the weights (cfg.ema > 0): what is validated and kept
        self.ema_decay = ema_decay(train_cfg, len(self.train_windows.plan(train_cfg.batch_size, shuffle=True,
                                                                     max_tokens=train_cfg.batch_tokens)))
        self.ema = self._new_average() if self.ema_decay else None
        self.epoch = 0
        self.best_epoch = 0
        self.best_score = -math.inf
        self.best_state: dict | None = None
        self.bad_epochs = 0
        self.history: list[dict] = []
        self.seconds = 0.0
        self.phase = "main"                    # "mastery": the mastery phase (cfg.mastery_epochs)
        self.main_epochs: int | None = None    # the epochs of the main phase, once it has ended
        if train_cfg.mastery_epochs:
            self._mastery_params()             # refuse early what the phase cannot train

    def _split_params(self) -> tuple[list, list]:
        """The model's parameters: (the rest, those that only make mastery: GainAKT2.MASTERY_ONLY)."""
        own = set(getattr(self.model, "MASTERY_ONLY", ()))
        rest, mastery = [], []
        for name, p in self.model.named_parameters():
            path = name.split(".")
            if path[0] == "members":                     # an ensemble: members.K.<module>...
                path = path[2:]
            (mastery if path[0] in own else rest).append(p)
        return rest, mastery

    def _new_average(self) -> AveragedModel:
        """An exponential moving average of the model's weights with decay self.ema_decay (warmed up)."""
        return AveragedModel(self.model, multi_avg_fn=ema_warmup_fn(self.ema_decay), use_buffers=True)

    @property
    def eval_model(self):
        """The weights that are validated and kept: the moving average (cfg.ema > 0) or the model."""
        return self.ema.module if self.ema is not None else self.model

    # ---- resume -------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything to continue exactly where the last finished epoch left off (plain data)."""
        return {"model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "epoch": self.epoch, "best_epoch": self.best_epoch, "best_score": self.best_score,
                "best_state": self.best_state, "bad_epochs": self.bad_epochs,
                "history": self.history, "seconds": self.seconds,
                "phase": self.phase, "main_epochs": self.main_epochs,
                "ema": ({k: v.detach().cpu().clone() for k, v in self.ema.state_dict().items()}
                        if self.ema is not None else None)}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.phase, self.main_epochs = state.get("phase", "main"), state.get("main_epochs")
        if self.phase == "mastery":
            self._freeze_for_mastery()               # the optimizer state below is that phase's
        if self.ema is not None:
            if state.get("ema") is None:             # saved without an average: start it from the weights
                self.ema = self._new_average()
            else:
                self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        cuda_rng = state.get("cuda_rng") or []
        if cuda_rng and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_rng)
        self.epoch, self.best_epoch = int(state["epoch"]), int(state["best_epoch"])
        self.best_score, self.bad_epochs = float(state["best_score"]), int(state["bad_epochs"])
        self.best_state, self.history = state["best_state"], list(state["history"])
        self.seconds = float(state.get("seconds", 0.0))

    def best_model(self):
        """A model holding the best epoch's weights (the current ones before any epoch)."""
        with torch.random.fork_rng(devices=[]):      # building it must not move the training RNG
            model = build_model(self.model_cfg).to(self.device)
        model.load_state_dict(self.best_state if self.best_state is not None else self.eval_model.state_dict())
        return model.eval()

    # ---- training -----------------------------------------------------------------
    def evaluate(self, model, ds) -> dict:
        return evaluate_model(model, ds, self.device, self.cfg.eval_batch_size)

    def train_epoch(self, epoch: int) -> dict:
        self.model.train()
        cw = self.train_windows
        groups = cw.plan(self.cfg.batch_size, shuffle=True, seed=self.cfg.seed * 100_003 + epoch,
                         max_tokens=self.cfg.batch_tokens)
        carry = torch.zeros(len(cw), self.model_cfg.num_skills, device=self.device)  # (W, C)
        sums = {k: 0.0 for k in ("total", "bce", *LOSS_NAMES)}
        n = 0
        for b, idx in enumerate(groups):
            if distributed.any_flag(self.callbacks.should_stop()):
                raise Cancelled()
            with accel.autocast(self.device, self.amp_dtype):
                wb = distributed.forward_batch(self.model, self.data.train, cw, idx, carry, self.device)
            wb = accel.float_outputs(wb)
            losses = compute_losses(wb.out, wb.skills, wb.responses, wb.kept, self.weights,
                                    getattr(self.model_cfg, "gain_scale", 0.1), self.cfg.mastery_loss)
            if not torch.isfinite(losses["total"]):
                raise Diverged(f"training diverged at epoch {epoch}, batch {b + 1}: loss is "
                               f"{float(losses['total'].detach())} (try a lower lr)")
            self.opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            distributed.sync_grads(self.model)
            accel.clip_gradients(self.model.parameters(), self.cfg.grad_clip)
            self.opt.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            for k in sums:
                sums[k] += float(losses[k].detach())
            n += 1
            self.callbacks.on_batch(epoch, b + 1, len(groups), sums["total"] / n)
        return {f"train_{k}" if k in ("total", "bce") else f"loss_{k}": v / max(n, 1) for k, v in sums.items()}

    def fit(self) -> TrainResult:
        if self.phase == "main":
            done = self.bad_epochs >= self.cfg.patience  # a resumed run that had already stopped early
            for epoch in range(self.epoch + 1, self.cfg.epochs + 1 if not done else 0):
                if self._run_epoch(epoch):
                    break
            self.main_epochs = self.epoch
            if self.cfg.mastery_epochs:
                self._start_mastery_phase()
        if self.phase == "mastery":
            done = self.bad_epochs >= self.cfg.patience
            for epoch in range(self.epoch + 1, self.main_epochs + self.cfg.mastery_epochs + 1 if not done else 0):
                if self._run_epoch(epoch):
                    break
        if self.phase != "stack" and self._stacks():
            self._fit_stack()
        best = next((r for r in self.history if r["epoch"] == self.best_epoch), {})
        main_epochs = self.main_epochs if self.main_epochs is not None else self.epoch
        return TrainResult(self.best_epoch, best, list(self.history),
                           stopped_early=main_epochs < self.cfg.epochs, seconds=self.seconds)

    def _run_epoch(self, epoch: int) -> bool:
        """Train and validate one epoch, keep it if it is the best so far; True: stop (patience)."""
        t0 = time.perf_counter()
        rec = {"epoch": epoch}
        if self.phase == "mastery":
            rec["phase"] = "mastery"
        rec.update(self.train_epoch(epoch))
        if distributed.any_flag(self.callbacks.should_stop()):
            raise Cancelled()
        val = distributed.on_main(lambda: self.evaluate(self.eval_model, self.data.valid))
        if val.get("n_nonfinite"):
            raise Diverged(f"training diverged at epoch {epoch}: {val['n_nonfinite']} validation "
                           "predictions, masteries or gains are not finite numbers (try a lower lr)")
        rec["val_loss"], rec["val_auc"], rec["val_accuracy"] = val.pop("loss"), val.pop("auc"), val.pop("accuracy")
        rec.update(val)
        rec["lr"] = self.opt.param_groups[0]["lr"]
        score = selection_score(rec, self.select_on)
        self.sched.step(score)
        rec["seconds"] = time.perf_counter() - t0
        self.seconds += rec["seconds"]
        is_best = score > self.best_score
        if is_best:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.eval_model.state_dict().items()}
        else:
            self.bad_epochs += 1
        self.epoch = epoch
        self.history.append(rec)
        self.callbacks.on_epoch(rec, is_best)
        return self.bad_epochs >= self.cfg.patience

    # ---- the stack (ModelConfig.stack) --------------------------------------------------
    def _stacks(self) -> bool:
        """Whether the model has a stack to fit: a finite, non-zero momentary bound or none
        (the stack's history sum is part of the momentary part)."""
        return getattr(self.model_cfg, "stack", "none") != "none" and getattr(self.model_cfg, "momentary_bound", None) != 0

    def _fit_stack(self) -> None:
        """After the last epoch: fit the best model's stack (cmkt/train/stacking.py) and keep it as the
        best, recorded as one more line of the history (phase "stack")."""
        from cmkt.train.stacking import fit_stack
        if distributed.any_flag(self.callbacks.should_stop()):
            raise Cancelled()
        t0 = time.perf_counter()
        model = self.best_model()
        fit = fit_stack(model, self.data.train, self.data.valid, self.device, self.cfg.eval_batch_size)
        epoch = self.epoch + 1
        rec = {"epoch": epoch, "phase": "stack", "stack_blend": fit.blend, "stack_strength": fit.strength,
               "stack_valid_auc_pairwise": fit.valid_auc_pairwise, "stack_valid_auc_network": fit.valid_auc_network}
        val = distributed.on_main(lambda: self.evaluate(model, self.data.valid))
        rec["val_loss"], rec["val_auc"], rec["val_accuracy"] = val.pop("loss"), val.pop("auc"), val.pop("accuracy")
        rec.update(val)
        rec["seconds"] = time.perf_counter() - t0
        self.seconds += rec["seconds"]
        self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self.eval_model.load_state_dict(self.best_state)      # what the epoch callback saves as best
        self.best_epoch, self.epoch, self.phase = epoch, epoch, "stack"
        self.best_score = selection_score(rec, self.select_on)
        self.history.append(rec)
        self.callbacks.on_epoch(rec, True)

    # ---- the mastery phase (cfg.mastery_epochs) ----------------------------------------
    @property
    def select_on(self) -> str:
        """What picks the best epoch now: cfg.select_on in the main phase; in the mastery phase
        validation AUC + mastery AUC (mastery may improve, the prediction must not pay for it)."""
        return "auc+mastery_auc" if self.phase == "mastery" else self.cfg.select_on

    def _mastery_params(self) -> set[str]:
        """Names of the top-level modules / parameters trained in the mastery phase."""
        own = set(getattr(self.model, "MASTERY_ONLY", ()))
        if not own or getattr(self.model_cfg, "mode", None) != "cumulative":
            raise ValueError("mastery_epochs needs a cumulative GainAKT2 model (the parameters that make "
                             "mastery alone are trained in that phase)")
        return own

    def _freeze_for_mastery(self) -> None:
        """Only the parameters that make mastery alone learn; a fresh optimizer and plateau
        schedule at cfg.lr over them."""
        self._mastery_params()
        rest, trainable = self._split_params()
        for p in rest:
            p.requires_grad_(False)
        for p in trainable:
            p.requires_grad_(True)
        self.opt = accel.make_optimizer(trainable, self.cfg.lr, self.cfg.weight_decay, self.device)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, mode="max", factor=0.5, patience=1)

    def _start_mastery_phase(self) -> None:
        """From the best epoch's weights (the average's, with ema), train mastery alone."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self._freeze_for_mastery()
        if self.ema is not None:
            self.ema = self._new_average()
        self.phase, self.bad_epochs = "mastery", 0
        best = next((r for r in self.history if r["epoch"] == self.best_epoch), None)
        if best is not None:                       # the phase's yardstick: the best epoch, rescored
            self.best_score = selection_score(best, self.select_on)
