"""Cut sequences into model-length windows and batch windows of similar length."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .dataset import KTDataset


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
