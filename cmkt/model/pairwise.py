"""A pairwise logistic model of the answers so far, stacked on the network (ModelConfig.stack).

For step t with skill s_t: z_t = b[s_t] + sum_k W[s_t, k] * log(1 + n_k), where n_k counts the
earlier steps of the window with token k = skill + C * response (every skill's successes and
failures, weighted per target skill: PFA with transfer between skills). It is convex, fitted after
the network by regularised logistic regression (cmkt/train/stacking.py), and blended with the network's
logit at a weight chosen on validation: logit = (1 - w) * network + w * z. A homogeneous ensemble
stops improving after a few members; a model of another kind adds what they share not to know
(docs/RESULTS.md, "Stacking a pairwise logistic model")."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class PairwiseHistory(nn.Module):
    """Its weights are zeros and its blend weight 0 until fitted: an unfitted one changes nothing."""

    def __init__(self, num_skills: int):
        super().__init__()
        C = num_skills
        self.num_skills = C
        # fitted, not trained by gradient: buffers (saved with the weights, outside the optimizer)
        self.register_buffer("weight", torch.zeros(C, 2 * C))                   # (C, 2C) target x token
        self.register_buffer("bias", torch.zeros(C))                            # (C,)
        self.register_buffer("blend", torch.zeros(()))                          # w in [0, 1)

    @property
    def active(self) -> bool:
        return float(self.blend) > 0

    def forward(self, skills: torch.Tensor, responses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """skills, responses (B, T) -> (intercept b[s_t], history sum) each (B, T), float32.
        Padding comes after a window's end, so it never enters an earlier step's counts."""
        C = self.num_skills
        with torch.autocast(skills.device.type, enabled=False):
            onehot = F.one_hot(skills + C * responses, 2 * C).float()               # (B, T, 2C)
            before = torch.log1p(torch.cumsum(onehot, dim=1) - onehot)              # (B, T, 2C) counts < t
            every = before @ self.weight.float().t()                                # (B, T, C) per target skill
            history = every.gather(-1, skills.unsqueeze(-1)).squeeze(-1)            # (B, T) at s_t
            return self.bias.float()[skills], history


def window_features(skills: np.ndarray, responses: np.ndarray, num_skills: int):
    """The design matrix of one window, as PairwiseHistory reads it: (T, C + 2C*C) sparse rows
    [one-hot s_t | log(1 + counts before t) in the block of s_t]. Returns (rows, cols, vals)."""
    C, T = num_skills, len(skills)
    tok = skills + C * responses
    onehot = np.zeros((T, 2 * C), np.float64)
    onehot[np.arange(T), tok] = 1
    counts = np.cumsum(onehot, axis=0) - onehot                                    # (T, 2C)
    i, k = np.nonzero(counts)
    rows = np.concatenate([np.arange(T), i])
    cols = np.concatenate([skills, C + skills[i] * 2 * C + k])
    vals = np.concatenate([np.ones(T), np.log1p(counts[i, k])])
    return rows, cols, vals
