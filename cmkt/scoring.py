"""Run a model over a whole data set and keep every student's trajectory."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data.batching import Windows, batch_plan, collate
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


def scoring_windows(ds: KTDataset, max_len: int) -> tuple[Windows, np.ndarray]:
    """Windows to score a data set with: the first max_len steps of a student in one window;
    after that, windows that keep max_len // 2 new steps each and re-read the steps just
    before them as context (each window feeds max_len steps), so no prediction after step
    max_len is made from a cold start. Returns (windows fed to the model, first kept step)."""
    stride = max(1, max_len // 2)
    lengths = ds.lengths
    extra = np.maximum(-(-(lengths - max_len) // stride), 0)           # later windows per student
    counts = 1 + extra
    row = np.repeat(np.arange(len(ds)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else np.zeros(0, np.int64)
    k = np.arange(len(row)) - np.repeat(first, counts)                 # window number
    keep = np.where(k == 0, 0, max_len + (k - 1) * stride)
    end = np.where(k == 0, np.minimum(max_len, lengths[row]), np.minimum(keep + stride, lengths[row]))
    lo = np.where(k == 0, 0, end - max_len)
    nonempty = end > keep
    w = Windows(row[nonempty].astype(np.int64), lo[nonempty].astype(np.int64), end[nonempty].astype(np.int64))
    return w, keep[nonempty].astype(np.int64)


@torch.no_grad()
def score(model, ds: KTDataset, device="cpu", batch_size: int = 64) -> Trajectories:
    """Score every step of every student. Long students are cut into windows that re-read the
    steps before them as context (scoring_windows); in cumulative mode a later window starts
    from the mastery the previous one ended with, so the guarantees hold over the whole sequence."""
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
    feed, keep_from = scoring_windows(ds, cfg.max_len)
    for idx in batch_plan(feed, batch_size, shuffle=False):
        skills, responses, mask = collate(ds, feed, idx, device)
        out = model(skills, responses)
        p = torch.sigmoid(out.logits).float().cpu().numpy()
        m = out.mastery.float().cpu().numpy()
        g = out.gains.float().cpu().numpy()
        for b, w in enumerate(idx):
            k0 = int(keep_from[w] - feed.start[w])           # context steps re-read, not kept
            n = int(feed.end[w] - keep_from[w])
            at = offsets[feed.row[w]] + keep_from[w]
            probs[at:at + n] = p[b, k0:k0 + n]
            mastery[at:at + n] = m[b, k0:k0 + n]
            gains[at:at + n] = g[b, k0:k0 + n]
    if cfg.mode == "cumulative":
        # chain windows: window k>0 accumulates on top of window k-1's last mastery
        for w in np.nonzero(keep_from > 0)[0]:
            at = offsets[feed.row[w]] + keep_from[w]
            n = int(feed.end[w] - keep_from[w])
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
