"""Cumulative mastery and the gap gains it accumulates, and both in one step with a hand-written
gradient (`gap_mastery`, what the cumulative model trains with).

Its forward runs `gap_gains`' operations (`_gap_terms`, shared) then `cumulative_mastery`, so gains
and mastery are bit-identical to those two and the guarantees hold as
they did: gains = (1 - m_{t-1}) * (1 - exp(-scale * raw_t)) / scale >= 0, mastery =
min(1, base + scale * cumsum(gains)) never falls. The gradient is that of the closed form the two
compute, gap_t = 1 - m_t = (1 - base) * exp(-scale * S_t) with S_t = raw_1 + ... + raw_t (the
clamp at 1 never binds in that form; where float rounding alone pushes a value past 1, the old chain
gave it no mastery gradient and this one does):

    gains_t = (gap_{t-1} - gap_t) / scale,   mastery_t = 1 - gap_t,   gap_{-1} = 1 - base.

Autograd would differentiate each of the ~14 (B, T, C) operations and keep their inputs; this
gradient is 8 operations and keeps one (B, T, C) tensor: the chain alone (B 64, T 100, C 100)
takes 10.4 ms a training step instead of 14.1 (docs/experiments, 2026-12-06, third session).
"""
from __future__ import annotations

import torch


def cumulative_mastery(base: torch.Tensor, gains: torch.Tensor, scale: float) -> torch.Tensor:
    """Closed form of m_t = clamp(m_{t-1} + scale * g_t, 0, 1) from m_{-1} = base,
    valid for non-negative gains: min(1, base + scale * cumsum(g)).
    base: (B, 1, C) in [0, 1]; gains: (B, T, C) >= 0."""
    return torch.clamp(base + scale * torch.cumsum(gains, dim=1), max=1.0)


def gap_gains(base: torch.Tensor, raw: torch.Tensor, scale: float) -> torch.Tensor:
    """Gains that each close a share of the gap to full mastery: with raw >= 0,
    1 - m_t = (1 - m_{t-1}) * exp(-scale * raw_t), i.e. g_t = (1 - m_{t-1}) * (1 - exp(-scale * raw_t)) / scale.
    Non-negative by construction, and cumulative_mastery of them never reaches the clamp.
    base: (B, C) in [0, 1]; raw: (B, T, C) >= 0."""
    return _gap_terms(base, raw, scale)[0]


def _gap_terms(base: torch.Tensor, raw: torch.Tensor, scale: float):
    """gap_gains, with exp(-a S_{t-1}) and exp(-a raw_t) - 1, which the gradient reuses (B, T, C each)."""
    before = torch.cumsum(raw, dim=1) - raw                             # (B, T, C) S_{t-1}, the sum over steps < t
    decay_before = torch.exp(-scale * before)                           # exp(-a S_{t-1})
    gap_before = (1 - base).unsqueeze(1) * decay_before                 # (B, T, C) 1 - m_{t-1}
    step = torch.expm1(-scale * raw)                                    # exp(-a raw_t) - 1 (<= 0)
    return gap_before * -step / scale, decay_before, step


class _GapMastery(torch.autograd.Function):
    @staticmethod
    def forward(ctx, base: torch.Tensor, raw: torch.Tensor, scale: float):
        """base (B, C) in [0, 1]; raw (B, T, C) >= 0 -> gains, mastery (B, T, C)."""
        gains, decay_before, step = _gap_terms(base, raw, scale)
        mastery = cumulative_mastery(base.unsqueeze(1), gains, scale)
        ctx.scale = scale
        ctx.set_materialize_grads(False)                # an output not used gets None, not zeros
        ctx.save_for_backward(base, decay_before.addcmul_(decay_before, step))  # exp(-a S_t), in place
        return gains, mastery

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_gains: torch.Tensor | None, d_mastery: torch.Tensor | None):
        base, decay = ctx.saved_tensors                                     # (B, C), (B, T, C)
        a = ctx.scale
        if d_gains is None and d_mastery is None:
            return None, None, None
        # dL/dgap_t for t = 0..T-1 (gap_t = (1 - base) * decay_t), and g_0 = dL/dgap_{-1} (gap_{-1} = 1 - base)
        if d_gains is not None:
            g = d_gains * (1.0 / a)                                         # a new tensor, never changed below
            d_gap = -(g + d_mastery) if d_mastery is not None else -g
            d_gap[:, :-1] += g[:, 1:]
        else:
            d_gap = -d_mastery
        d_s = d_gap.mul_(decay)                                             # (B, T, C) dL/dS_t / (-a (1 - base))
        d_base = None
        if ctx.needs_input_grad[0]:
            d_base = -d_s.sum(1)
            if d_gains is not None:
                d_base -= g[:, 0]
        d_raw = None
        if ctx.needs_input_grad[1]:
            d_s.mul_((-a * (1 - base)).unsqueeze(1))                        # dL/dS_t
            total = d_s.sum(1, keepdim=True)
            d_raw = d_s - torch.cumsum(d_s, dim=1)                          # sum over t >= k of dL/dS_t
            d_raw += total
        return d_base, d_raw, None


def gap_mastery(base: torch.Tensor, raw: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gap gains of raw (>= 0) from base, and the cumulative mastery of them: the values of
    gap_gains(base, raw, scale) and cumulative_mastery(base[:, None], ..., scale).
    base: (B, C) in [0, 1]; raw: (B, T, C) >= 0. Returns gains, mastery (B, T, C)."""
    return _GapMastery.apply(base, raw, scale)
