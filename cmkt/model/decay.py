"""A gain encoder that runs in parallel over time: causal sums of the interactions at several
decay rates, in place of an LSTM's step-by-step recurrence (ModelConfig.gain_encoder = "decay").

For decay rate λ_k and embedded interactions e_s (token s_s + C·r_s):

    h_t[k] = (1 − λ_k) · Σ_{s ≤ t} λ_k^{t−s} · e_s[k]        (an exponential moving sum)

with λ = 1 read as the running mean over the window (Σ_{s ≤ t} e_s / max_len). The width is split
into as many channel groups as there are rates, from a memory of 2 steps to the whole window.
All t are computed at once as one batched matmul with a (T, T) lower-triangular weight matrix
per rate, so a window costs one parallel product instead of T sequential LSTM steps. A GELU layer
mixes the groups. Like the LSTM it reads only the interactions (never the transformer), so the
mastery losses train the gain side alone."""
from __future__ import annotations

import torch
import torch.nn as nn

# memory of about 2, 4, 8, ... steps (1 / (1 - λ)), and the whole window
DECAYS = (0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375, 0.9921875, 1.0)


def decay_weights(decays: torch.Tensor, T: int, max_len: int) -> torch.Tensor:
    """(K, T, T) lower-triangular: w[k, t, s] = (1 − λ_k) λ_k^{t−s} for s ≤ t (λ = 1: 1 / max_len)."""
    t = torch.arange(T, device=decays.device, dtype=decays.dtype)
    lag = (t[:, None] - t[None, :])                                            # (T, T)
    causal = lag >= 0
    lam = decays[:, None, None]                                                # (K, 1, 1)
    scale = torch.where(lam < 1, 1 - lam, torch.full_like(lam, 1.0 / max_len))
    w = scale * lam ** lag.clamp(min=0)                                        # (K, T, T)
    return w * causal


class DecayEncoder(nn.Module):
    """tokens (B, T) -> (B, T, hidden): causal decayed sums of the embedded interactions."""

    def __init__(self, n_tokens: int, hidden: int, max_len: int, decays=DECAYS):
        super().__init__()
        k = len(decays)
        if hidden % k:
            raise ValueError(f"gain_hidden ({hidden}) must be a multiple of {k} for gain_encoder 'decay'")
        self.embed = nn.Embedding(n_tokens, hidden)
        self.mix = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU())
        self.register_buffer("decays", torch.tensor(decays), persistent=False)
        self.max_len = max_len
        self._cache: dict = {}

    def weights(self, T: int, like: torch.Tensor) -> torch.Tensor:
        key = (T, like.device, like.dtype)
        if key not in self._cache:
            self._cache = {key: decay_weights(self.decays.double(), T, self.max_len).to(like.device, like.dtype)}
        return self._cache[key]

    def forward(self, tokens: torch.Tensor, drop: nn.Module | None = None) -> torch.Tensor:
        B, T = tokens.shape
        e = self.embed(tokens)                                                     # (B, T, H)
        if drop is not None:
            e = drop(e)
        K = self.decays.shape[0]
        e = e.view(B, T, K, -1)                                                    # (B, T, K, H/K)
        h = torch.einsum("kts,bskc->btkc", self.weights(T, e), e)                  # (B, T, K, H/K)
        return self.mix(h.reshape(B, T, -1))                                       # (B, T, H)
