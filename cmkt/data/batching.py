"""Cut sequences into model-length windows and batch windows of similar length."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cmkt.data.dataset import KTDataset


@dataclass
class Windows:
    """Window w covers steps [start[w], end[w]) of student row[w]."""

    row: np.ndarray    # (W,)
    start: np.ndarray  # (W,)
    end: np.ndarray    # (W,)

    def __len__(self) -> int:
        return len(self.row)

    @property
    def lengths(self) -> np.ndarray:
        return self.end - self.start


def make_windows(ds: KTDataset, max_len: int, min_len: int = 1) -> Windows:
    """Every student cut into consecutive windows of at most max_len steps (nothing dropped,
    except windows shorter than min_len: training needs at least 2 steps to learn from)."""
    lengths = ds.lengths
    counts = np.maximum((lengths + max_len - 1) // max_len, 0)
    row = np.repeat(np.arange(len(ds)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else np.zeros(0, np.int64)
    k = np.arange(len(row)) - np.repeat(first, counts)       # window number within its student
    start = k * max_len
    end = np.minimum(start + max_len, lengths[row])
    keep = (end - start) >= min_len
    return Windows(row[keep].astype(np.int64), start[keep].astype(np.int64), end[keep].astype(np.int64))


@dataclass
class ChainedWindows:
    """Windows over long students, trained and scored the same way. A student's first window
    holds its first max_len steps; each later window keeps max_len // 2 new steps and re-reads
    the steps just before them as context (it feeds max_len steps), so no prediction after step
    max_len is made from a cold start. Window w keeps steps [keep_from[w], windows.end[w]); the
    next window of the same student is w + 1 and continues from w's last mastery."""

    windows: Windows
    keep_from: np.ndarray   # (W,) first kept step (absolute)
    phase: np.ndarray       # (W,) window number within its student: 0, 1, ...

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def continues(self) -> np.ndarray:
        """(W,) bool: the window continues its student's previous window."""
        return self.phase > 0

    @property
    def has_next(self) -> np.ndarray:
        """(W,) bool: window w + 1 continues window w."""
        nxt = np.zeros(len(self), dtype=bool)
        if len(self) > 1:
            nxt[:-1] = self.phase[1:] > 0
        return nxt

    def plan(self, batch_size: int, shuffle: bool, seed: int = 0, max_tokens: int = 0) -> list[np.ndarray]:
        """Batches of similar length in which every window comes after its student's previous
        window. Windows become ready once the window they continue is in an earlier batch; each
        batch is a run of similar length from the ready ones (a random run when shuffling), so
        continuing windows are spread over the epoch rather than all left to its end.
        max_tokens > 0 (training): a run of short windows holds more than batch_size of them, up to
        max_tokens padded steps (count x the longest): an epoch takes fewer steps."""
        n = len(self)
        if n == 0:
            return []
        if not shuffle:                      # scoring: phase by phase, each in length order
            return [sel[g] for p in np.unique(self.phase)
                    for sel in [np.nonzero(self.phase == p)[0]]
                    for g in batch_plan(Windows(self.windows.row[sel], self.windows.start[sel],
                                                self.windows.end[sel]), batch_size, False)]
        rng = np.random.default_rng(seed)
        lengths = self.windows.lengths
        jitter = rng.random(n)
        has_next = self.has_next
        ready = np.nonzero(~self.continues)[0]
        ready = ready[np.lexsort((jitter[ready], lengths[ready]))]
        groups = []
        while len(ready):
            bounds = token_runs(lengths[ready], batch_size, max_tokens)
            c = int(rng.integers(len(bounds) - 1))
            lo, hi = int(bounds[c]), int(bounds[c + 1])
            group = ready[lo:hi]
            groups.append(group)
            ready = np.concatenate([ready[:lo], ready[hi:]])
            nxt = group[has_next[group]] + 1
            if len(nxt):                     # successors join the ready ones, in length order
                ready = np.concatenate([ready, nxt])
                ready = ready[np.lexsort((jitter[ready], lengths[ready]))]
        return groups


def token_runs(sorted_lengths: np.ndarray, batch_size: int, max_tokens: int) -> np.ndarray:
    """Boundaries of consecutive runs of a length-sorted (ascending) list: each run holds
    batch_size windows, or more while its padded size (count x its last, longest, length) stays
    within max_tokens (0: batch_size each). Returns (R + 1,) indices: run r is [b[r], b[r + 1])."""
    lengths = np.asarray(sorted_lengths, dtype=np.int64)
    n = len(lengths)
    if not max_tokens:
        return np.arange(0, n + batch_size, batch_size).clip(max=n)
    # fit[i]: the most windows from i on whose padded size fits, the largest k with
    # lengths[i + k - 1] * k <= max_tokens (the product grows with k): a binary search for all i at once
    start = np.arange(n)
    room = np.minimum(n - start, max_tokens // np.maximum(lengths, 1))             # (n,) k never exceeds
    fit = np.zeros(n, dtype=np.int64)
    step = 1 << int(room.max(initial=1)).bit_length()                              # > every k to try
    while step:
        k = fit + step
        ok = k <= room
        ok[ok] = lengths[(start + k - 1)[ok]] * k[ok] <= max_tokens
        fit = np.where(ok, k, fit)
        step >>= 1
    reach = np.maximum(fit, batch_size)                                              # (n,) run length from i
    bounds = [0]
    while bounds[-1] < n:
        bounds.append(min(n, bounds[-1] + int(reach[bounds[-1]])))
    return np.asarray(bounds, dtype=np.int64)


def chained_windows(ds: KTDataset, max_len: int) -> ChainedWindows:
    """The windows long students are trained and scored with (see ChainedWindows)."""
    stride = max(1, max_len // 2)
    lengths = ds.lengths
    extra = np.maximum(-(-(lengths - max_len) // stride), 0)           # later windows per student
    counts = np.where(lengths > 0, 1 + extra, 0)
    row = np.repeat(np.arange(len(ds)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else np.zeros(0, np.int64)
    k = np.arange(len(row)) - np.repeat(first, counts)                 # window number
    keep = np.where(k == 0, 0, max_len + (k - 1) * stride)
    end = np.where(k == 0, np.minimum(max_len, lengths[row]), np.minimum(keep + stride, lengths[row]))
    lo = np.where(k == 0, 0, np.maximum(end - max_len, 0))
    w = Windows(row.astype(np.int64), lo.astype(np.int64), end.astype(np.int64))
    return ChainedWindows(w, keep.astype(np.int64), k.astype(np.int64))


def batch_plan(windows: Windows, batch_size: int, shuffle: bool, seed: int = 0) -> list[np.ndarray]:
    """Groups of window indices of similar length (sorted by length, then chunked);
    the order of groups (and ties) is shuffled when training."""
    n = len(windows)
    if n == 0:
        return []
    rng = np.random.default_rng(seed)
    jitter = rng.random(n) if shuffle else np.zeros(n)
    order = np.lexsort((jitter, windows.lengths))
    groups = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if shuffle:
        rng.shuffle(groups)
    return groups


def collate(ds: KTDataset, windows: Windows, idx: np.ndarray, device="cpu"):
    """Pad a group of windows to its longest member.
    Returns skills (B, T), responses (B, T) long, mask (B, T) bool."""
    lens = windows.lengths[idx]
    T = int(lens.max())
    B = len(idx)
    skills = np.zeros((B, T), dtype=np.int64)
    responses = np.zeros((B, T), dtype=np.int64)
    for b, w in enumerate(idx):
        r, s, e = windows.row[w], windows.start[w], windows.end[w]
        skills[b, : e - s] = ds.skills[r][s:e]
        responses[b, : e - s] = ds.responses[r][s:e]
    mask = np.arange(T)[None, :] < lens[:, None]
    return (torch.from_numpy(skills).to(device), torch.from_numpy(responses).to(device),
            torch.from_numpy(mask).to(device))
