"""Dropout whose mask is cheap to draw on the CPU.

PyTorch's CPU dropout draws one Bernoulli sample per element (`bernoulli_`), which took about 30%
of a training epoch on a 2-core CPU (benchmarks/speed.py profile). Here one 64-bit random draw
gives four 16-bit uniform numbers, and an element is dropped when its number falls below
round(p * 65536) / 65536: the same inverted dropout, with p exact to 1 / 65536, several times
faster to draw (4-6x measured on the 2-core CPU). On other devices (CUDA) it is `F.dropout` itself."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

_LEVELS = 1 << 16


def dropout_mask(shape, p: float, device=None) -> torch.Tensor:
    """A bool mask of `shape`: True (kept) with probability 1 - round(p * 65536) / 65536."""
    n = math.prod(shape)
    words = torch.randint(-(2 ** 63), 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    u16 = words.view(torch.int16)[:n].view(shape)                      # uniform on [-32768, 32767]
    return u16 >= int(round(p * _LEVELS)) - (_LEVELS // 2)


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or p == 0:
        return x
    if x.device.type != "cpu" or p >= 1:
        return F.dropout(x, p, training)
    keep = dropout_mask(x.shape, p, device=x.device)
    scale = 1.0 / (1.0 - round(p * _LEVELS) / _LEVELS)
    return x * keep.mul(scale).to(x.dtype)                             # one multiply forward and backward


class FastDropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on the CPU (same parameters, same state dict: none)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def Dropout(p: float, kernel: str = "torch") -> nn.Dropout:
    """The dropout module of a ModelConfig.dropout_kernel: "torch" or "fast"."""
    return FastDropout(p) if kernel == "fast" else nn.Dropout(p)
