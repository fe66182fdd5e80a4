"""Prediction loss and the six auxiliary interpretability losses (all masked)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cmkt.model.config import LOSS_NAMES
from cmkt.model.gainakt2 import GainAKT2Output

MARGIN = 0.1


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def _hinge_gap(values: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Every value on a correct answer should exceed the mean value on wrong answers by the
    margin, and every value on a wrong answer should stay below the mean on correct ones:
    mean relu(margin - (v_correct - mean v_wrong)) + mean relu(margin - (mean v_correct - v_wrong))."""
    correct = mask & (responses == 1)
    wrong = mask & (responses == 0)
    if not correct.any() or not wrong.any():
        return values.sum() * 0.0
    v_c, v_w = values[correct], values[wrong]
    return (F.relu(MARGIN - (v_c - v_w.mean().detach())).mean()
            + F.relu(MARGIN - (v_c.mean().detach() - v_w)).mean())


def _hinge_level(values: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Anchored to 0.5: a value before a correct answer should be at least 0.5 + margin,
    one before a wrong answer at most 0.5 - margin (mastery then reads as a level, not
    only as an ordering: without it cumulative mastery drifts up to 1 for everybody)."""
    correct = mask & (responses == 1)
    wrong = mask & (responses == 0)
    zero = values.sum() * 0.0
    lc = F.relu(0.5 + MARGIN - values[correct]).mean() if correct.any() else zero
    lw = F.relu(values[wrong] - (0.5 - MARGIN)).mean() if wrong.any() else zero
    return lc + lw


def compute_losses(out: GainAKT2Output, skills: torch.Tensor, responses: torch.Tensor,
                   mask: torch.Tensor, weights, gain_scale: float,
                   mastery_loss: float = 0.0) -> dict[str, torch.Tensor]:
    """skills, responses: (B, T); mask: (B, T) bool, True on the steps to learn from.
    mastery_loss: weight of 'mastery_bce', the cross-entropy of the mastery part of the logit
    alone (mastery predictor only): it makes mastery by itself a good estimate, whatever the
    momentary part adds.
    An ensemble's output (out.members) is trained member by member: each loss is the mean of the
    members' own, so each member learns as it would alone.
    Returns each loss, plus 'bce' and the weighted 'total'."""
    if getattr(out, "members", None):
        per = [compute_losses(o, skills, responses, mask, weights, gain_scale, mastery_loss)
               for o in out.members]
        return {k: torch.stack([p[k] for p in per]).mean() for k in per[0]}
    m, g = out.mastery, out.gains                                       # (B, T, C)
    C = m.shape[-1]
    mask3 = mask.unsqueeze(-1).expand_as(g)                             # (B, T, C)
    pair = mask[:, 1:] & mask[:, :-1]                                   # (B, T-1) both steps real
    pair3 = pair.unsqueeze(-1).expand(-1, -1, C)

    bce = _masked_mean(F.binary_cross_entropy_with_logits(
        out.logits, responses.float(), reduction="none"), mask)
    g_at = g.gather(-1, skills.unsqueeze(-1)).squeeze(-1)                # (B, T) gain of the practised skill
    zero = bce.new_zeros(())
    by_construction = getattr(out, "by_construction", False)
    consistent = getattr(out, "consistent_by_construction", False)
    dm = None if by_construction and consistent else m[:, 1:] - m[:, :-1]   # (B, T-1, C) when a loss reads it
    if by_construction:
        # gains >= 0 and mastery never falls: non-negative and monotonicity are exactly 0 with a
        # zero gradient (not computed), and |g| = g, so the sparsity mean over the skills not
        # practised is (sum over all skills - the practised one's) / (C - 1) per step
        structural = {"non_negative": zero, "monotonicity": zero}
        maskf = mask.to(g.dtype)
        sparsity = ((g.sum(-1) - g_at) * maskf).sum() / (maskf.sum() * (C - 1)).clamp(min=1.0)
    else:
        structural = {"non_negative": _masked_mean(F.relu(-g), mask3),
                      "monotonicity": _masked_mean(F.relu(-dm), pair3)}
        sparsity = _masked_mean(g.abs(), mask3 & ~F.one_hot(skills, C).bool())
    if consistent:
        consistency = zero          # m_t - m_{t-1} = gain_scale * g_t by construction (0 up to rounding)
    else:
        consistency = _masked_mean((dm - gain_scale * g[:, 1:]).abs(), pair3)
    losses = {
        **structural,
        # mastery of the skill about to be answered, before the answer
        # (anchored at 0.5: below 0.6 before a right answer, above 0.4 before a wrong one cost)
        "mastery_performance": _hinge_level(
            m[:, :-1].gather(-1, skills[:, 1:].unsqueeze(-1)).squeeze(-1), responses[:, 1:], pair),
        # gain credited to the practiced skill by this answer
        "gain_performance": _hinge_gap(g_at, responses, mask),
        "sparsity": sparsity,
        "consistency": consistency,
    }
    total = bce
    if out.parts is not None:
        losses["mastery_bce"] = _masked_mean(F.binary_cross_entropy_with_logits(
            out.parts[..., 0], responses.float(), reduction="none"), mask)
        if mastery_loss:
            total = total + mastery_loss * losses["mastery_bce"]
    for name, w in zip(LOSS_NAMES, weights):
        if w:
            total = total + w * losses[name]
    losses["bce"] = bce
    losses["total"] = total
    return losses
