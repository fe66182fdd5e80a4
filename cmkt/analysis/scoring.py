"""Run a model over a whole data set and keep every student's trajectory."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cmkt.data.batching import ChainedWindows, chained_windows, collate
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
    tm = None
    if ds.true_mastery is not None:
        tm = np.concatenate(ds.true_mastery, axis=0).astype(np.float32) if N else np.zeros((0, C), np.float32)
        if tm.shape[1] < C:
            tm = np.pad(tm, ((0, 0), (0, C - tm.shape[1])))
    cat = (lambda arrs: np.concatenate(arrs).astype(np.int64) if arrs else np.zeros(0, np.int64))
    return Trajectories(list(ds.student_ids), offsets, cat(ds.skills), cat(ds.responses),
                        probs, mastery, gains, cfg.mode, tm, parts, prior)
