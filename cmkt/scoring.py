"""Run a model over a whole data set and keep every student's trajectory."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data.batching import batch_plan, collate, make_windows
from .data.dataset import KTDataset
from .errors import DataError


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
        return out


def check_compatible(ds: KTDataset, num_skills: int, source: str = "") -> None:
    """A data set can be scored by a model only if every skill index is one it knows."""
    top = max((int(s.max()) for s in ds.skills if len(s)), default=-1)
    if top >= num_skills:
        raise DataError(source or ds.source or "data",
                        f"skill index {top} is not one the model knows (it has {num_skills} skills)")


@torch.no_grad()
def score(model, ds: KTDataset, device="cpu", batch_size: int = 64) -> Trajectories:
    """Score every step of every student. Long students are cut into model-length windows;
    in cumulative mode a later window starts from the mastery the previous one ended with,
    so the guarantees hold over the whole sequence."""
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
    windows = make_windows(ds, cfg.max_len)
    for idx in batch_plan(windows, batch_size, shuffle=False):
        skills, responses, mask = collate(ds, windows, idx, device)
        out = model(skills, responses)
        p = torch.sigmoid(out.logits).float().cpu().numpy()
        m = out.mastery.float().cpu().numpy()
        g = out.gains.float().cpu().numpy()
        for b, w in enumerate(idx):
            n = int(windows.end[w] - windows.start[w])
            at = offsets[windows.row[w]] + windows.start[w]
            probs[at:at + n] = p[b, :n]
            mastery[at:at + n] = m[b, :n]
            gains[at:at + n] = g[b, :n]
    if cfg.mode == "cumulative":
        # chain windows: window k>0 accumulates on top of window k-1's last mastery
        for w in np.nonzero(windows.start > 0)[0]:
            at = offsets[windows.row[w]] + windows.start[w]
            n = int(windows.end[w] - windows.start[w])
            mastery[at:at + n] = np.minimum(
                1.0, mastery[at - 1] + cfg.gain_scale * np.cumsum(gains[at:at + n], axis=0))
    if was_training:
        model.train()
    tm = None
    if ds.true_mastery is not None:
        tm = np.concatenate(ds.true_mastery, axis=0).astype(np.float32) if N else np.zeros((0, C), np.float32)
        if tm.shape[1] < C:
            tm = np.pad(tm, ((0, 0), (0, C - tm.shape[1])))
    cat = (lambda arrs: np.concatenate(arrs).astype(np.int64) if arrs else np.zeros(0, np.int64))
    return Trajectories(list(ds.student_ids), offsets, cat(ds.skills), cat(ds.responses),
                        probs, mastery, gains, cfg.mode, tm)
