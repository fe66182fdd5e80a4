"""Run a model over a whole data set and keep every student's trajectory."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cmkt.data.batching import ChainedWindows, batch_plan, chained_windows, collate, make_windows
from cmkt.data.dataset import KTDataset, check_compatible  # noqa: F401  (re-exported)


@dataclass
class Trajectories:
    """All students' scored steps, stacked. Student i owns rows offsets[i]:offsets[i+1]."""

    student_ids: list[str]
    offsets: np.ndarray          # (S+1,)
    skills: np.ndarray           # (N,)
    responses: np.ndarray        # (N,)
    probs: np.ndarray            # (N,) predicted P(r_t = 1) from steps < t and s_t
    mastery: np.ndarray          # (N, C) mastery after step t
    gains: np.ndarray            # (N, C) gain credited by step t
    mode: str
    true_mastery: np.ndarray | None = None  # (N, C), simulated data only
    parts: np.ndarray | None = None         # (N, 3) mastery/difficulty/momentary logit parts (mastery predictor)
    prior: np.ndarray | None = None         # (C,) mastery before a student's first step, where the model has one
    # (N,) bool, models that score windows afresh (imported pyKT models): the first step of every
    # window (a student's first step included), which has no prediction (probs is NaN there) and no
    # previous mastery; the metrics leave these rows out as they leave out t = 1. None: no such rows
    starts: np.ndarray | None = None

    @property
    def num_skills(self) -> int:
        return self.mastery.shape[1]

    def rows(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def student(self, i: int) -> dict:
        """The arrays of one student (by row number)."""
        sl = self.rows(i)
        out = {"skills": self.skills[sl], "responses": self.responses[sl], "probs": self.probs[sl],
               "mastery": self.mastery[sl], "gains": self.gains[sl]}
        if self.true_mastery is not None:
            out["true_mastery"] = self.true_mastery[sl]
        if self.parts is not None:
            out["parts"] = self.parts[sl]
        if self.starts is not None:
            out["starts"] = self.starts[sl]
        return out


@dataclass
class WindowBatch:
    """One batch of chained windows through the model."""

    skills: torch.Tensor     # (B, T)
    responses: torch.Tensor  # (B, T)
    kept: torch.Tensor       # (B, T) bool: real steps this window keeps (scores / learns from)
    keep_at: np.ndarray      # (B,) first kept step, relative to the window
    out: object              # the model's output


def forward_windows(model, ds: KTDataset, cw: ChainedWindows, idx: np.ndarray, carry: torch.Tensor,
                    device="cpu") -> WindowBatch:
    """Run the windows idx of cw through the model: a window that continues its student starts
    from carry[w], the mastery its previous window ended with; afterwards carry[w + 1] holds this
    window's last mastery (detached). The trainer and scoring both go through here, so what is
    scored is what was trained. carry: (W, C) on device."""
    skills, responses, mask = collate(ds, cw.windows, idx, device)
    keep_at = cw.keep_from[idx] - cw.windows.start[idx]                # (B,)
    k0 = torch.as_tensor(keep_at, device=skills.device)
    cont = cw.continues[idx]
    start = carry[torch.as_tensor(idx, device=carry.device)] if cont.any() else None
    out = model(skills, responses, start=start, keep_from=k0)
    T = skills.shape[1]
    kept = mask & (torch.arange(T, device=skills.device)[None, :] >= k0[:, None])
    nxt = cw.has_next[idx]
    if nxt.any():
        b = np.nonzero(nxt)[0]
        last = torch.as_tensor(cw.windows.lengths[idx][b] - 1, device=skills.device)
        carry[torch.as_tensor(idx[b] + 1, device=carry.device)] = \
            out.mastery[torch.as_tensor(b, device=skills.device), last].detach().to(carry.dtype)
    return WindowBatch(skills, responses, kept, keep_at, out)


@torch.no_grad()
def score(model, ds: KTDataset, device="cpu", batch_size: int = 64) -> Trajectories:
    """Score every step of every student. Long students are cut into chained windows
    (cmkt.data.batching.ChainedWindows), exactly as the trainer feeds them: a later window
    re-reads the steps before it as context and, in cumulative mode, starts from the mastery
    the previous window ended with, so the guarantees hold over the whole sequence."""
    cfg = model.cfg
    check_compatible(ds, cfg.num_skills)
    if getattr(model, "windowing", "chained") == "fresh":
        return _score_fresh(model, ds, device, batch_size)
    was_training = model.training
    model.eval()
    lengths = ds.lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    N, C = int(offsets[-1]), cfg.num_skills
    probs = np.zeros(N, dtype=np.float32)
    mastery = np.zeros((N, C), dtype=np.float32)
    gains = np.zeros((N, C), dtype=np.float32)
    parts = np.zeros((N, 3), dtype=np.float32) if cfg.predictor == "mastery" else None
    prior = model.prior_mastery()
    prior = None if prior is None else prior.detach().float().cpu().numpy()
    cw = chained_windows(ds, cfg.max_len)
    carry = torch.zeros(len(cw), C, device=device)
    for idx in cw.plan(batch_size, shuffle=False):
        wb = forward_windows(model, ds, cw, idx, carry, device)
        out = wb.out
        p = torch.sigmoid(out.logits).float().cpu().numpy()
        m = out.mastery.float().cpu().numpy()
        g = out.gains.float().cpu().numpy()
        pp = out.parts.float().cpu().numpy() if parts is not None else None
        for b, w in enumerate(idx):
            k0 = int(wb.keep_at[b])                          # context steps re-read, not kept
            n = int(cw.windows.end[w] - cw.keep_from[w])
            at = offsets[cw.windows.row[w]] + cw.keep_from[w]
            probs[at:at + n] = p[b, k0:k0 + n]
            mastery[at:at + n] = m[b, k0:k0 + n]
            gains[at:at + n] = g[b, k0:k0 + n]
            if pp is not None:
                parts[at:at + n] = pp[b, k0:k0 + n]
    if was_training:
        model.train()
    tm = _true_mastery(ds, N, C)
    return Trajectories(list(ds.student_ids), offsets, _cat(ds.skills), _cat(ds.responses),
                        probs, mastery, gains, cfg.mode, tm, parts, prior)


def _cat(arrs) -> np.ndarray:
    return np.concatenate(arrs).astype(np.int64) if arrs else np.zeros(0, np.int64)


def _true_mastery(ds: KTDataset, N: int, C: int) -> np.ndarray | None:
    if ds.true_mastery is None:
        return None
    tm = np.concatenate(ds.true_mastery, axis=0).astype(np.float32) if N else np.zeros((0, C), np.float32)
    return np.pad(tm, ((0, 0), (0, C - tm.shape[1]))) if tm.shape[1] < C else tm


def _score_fresh(model, ds: KTDataset, device, batch_size: int) -> Trajectories:
    """pyKT's protocol (a model with windowing = "fresh" and forward_steps(skills, responses) ->
    (probs, mastery, gains) in cmkt's alignment, probs NaN at a window's first step): every student
    cut into consecutive windows of cfg.max_len steps, each starting afresh (nothing carried over),
    so the numbers are the reference's own. The first step of every window has no prediction."""
    cfg = model.cfg
    was_training = model.training
    model.eval()
    offsets = np.concatenate([[0], np.cumsum(ds.lengths)]).astype(np.int64)
    N, C = int(offsets[-1]), cfg.num_skills
    probs = np.zeros(N, dtype=np.float32)
    mastery = np.zeros((N, C), dtype=np.float32)
    gains = np.zeros((N, C), dtype=np.float32)
    starts = np.zeros(N, dtype=bool)
    windows = make_windows(ds, cfg.max_len)
    for idx in batch_plan(windows, batch_size, shuffle=False):
        skills, responses, _ = collate(ds, windows, idx, device)
        p, m, g = (x.float().cpu().numpy() for x in model.forward_steps(skills, responses))
        for b, w in enumerate(idx):
            n = int(windows.lengths[w])
            at = int(offsets[windows.row[w]] + windows.start[w])
            probs[at:at + n], mastery[at:at + n], gains[at:at + n] = p[b, :n], m[b, :n], g[b, :n]
            starts[at] = True
    if was_training:
        model.train()
    return Trajectories(list(ds.student_ids), offsets, _cat(ds.skills), _cat(ds.responses), probs, mastery,
                        gains, cfg.mode, _true_mastery(ds, N, C), None, None, starts)
