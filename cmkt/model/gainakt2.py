"""GainAKT2: a two-stream knowledge-tracing transformer with mastery and gain heads."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig


@dataclass
class GainAKT2Output:
    logits: torch.Tensor   # (B, T) logit of P(r_t = 1 | steps < t, s_t)
    mastery: torch.Tensor  # (B, T, C) mastery after step t
    gains: torch.Tensor    # (B, T, C) learning gain credited by step t


class TwoStreamBlock(nn.Module):
    """Causal attention with queries/keys from the context stream and values from the
    value stream; both streams get the attention output, a residual and an FFN."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, self.h = cfg.d_model, cfg.n_heads
        self.qk = nn.Linear(d, 2 * d)
        self.v = nn.Linear(d, d)
        self.out_ctx = nn.Linear(d, d)
        self.out_val = nn.Linear(d, d)
        self.ln_ctx1, self.ln_val1 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ln_ctx2, self.ln_val2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff_ctx = nn.Sequential(nn.Linear(d, cfg.d_ff), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.d_ff, d))
        self.ff_val = nn.Sequential(nn.Linear(d, cfg.d_ff), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.d_ff, d))
        self.drop = nn.Dropout(cfg.dropout)
        self.attn_dropout = cfg.dropout

    def forward(self, ctx: torch.Tensor, val: torch.Tensor):
        B, T, D = ctx.shape
        q, k = self.qk(ctx).view(B, T, 2, self.h, D // self.h).permute(2, 0, 3, 1, 4)  # (B, H, T, Dh) each
        v = self.v(val).view(B, T, self.h, D // self.h).transpose(1, 2)                   # (B, H, T, Dh)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                             dropout_p=self.attn_dropout if self.training else 0.0)
        att = att.transpose(1, 2).reshape(B, T, D)                                         # (B, T, D)
        ctx = self.ln_ctx1(ctx + self.drop(self.out_ctx(att)))
        val = self.ln_val1(val + self.drop(self.out_val(att)))
        ctx = self.ln_ctx2(ctx + self.drop(self.ff_ctx(ctx)))
        val = self.ln_val2(val + self.drop(self.ff_val(val)))
        return ctx, val


class GainAKT2(nn.Module):
    """Token = s_t + C * r_t, embedded into a context and a value stream.

    mode "original":   gains = linear(value), mastery = linear(context), per step.
    mode "cumulative": gains = ReLU(linear(value)); base = sigmoid(linear(context_0));
                       mastery_t = min(1, base + gain_scale * cumsum(gains)_t).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        C, d = cfg.num_skills, cfg.d_model
        self.ctx_embed = nn.Embedding(2 * C, d)
        self.val_embed = nn.Embedding(2 * C, d)
        self.ctx_pos = nn.Embedding(cfg.max_len, d)
        self.val_pos = nn.Embedding(cfg.max_len, d)
        self.skill_embed = nn.Embedding(C, d)
        self.start = nn.Parameter(torch.zeros(2, d))  # stands in for (context, value) before step 0
        self.blocks = nn.ModuleList(TwoStreamBlock(cfg) for _ in range(cfg.n_blocks))
        self.emb_drop = nn.Dropout(cfg.dropout)
        self.predictor = nn.Sequential(
            nn.Linear(3 * d, cfg.d_ff), nn.GELU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.d_ff, cfg.d_ff // 2), nn.GELU(), nn.Linear(cfg.d_ff // 2, 1))
        self.mastery_head = nn.Linear(d, C)
        self.gain_head = nn.Linear(d, C)

    def forward(self, skills: torch.Tensor, responses: torch.Tensor) -> GainAKT2Output:
        """skills, responses: (B, T) long, padding anywhere after a sequence's end."""
        cfg = self.cfg
        B, T = skills.shape
        if T > cfg.max_len:
            raise ValueError(f"sequence length {T} exceeds the model's max_len {cfg.max_len}")
        tokens = skills + cfg.num_skills * responses                       # (B, T)
        pos = torch.arange(T, device=skills.device)
        ctx = self.emb_drop(self.ctx_embed(tokens) + self.ctx_pos(pos))    # (B, T, D)
        val = self.emb_drop(self.val_embed(tokens) + self.val_pos(pos))    # (B, T, D)
        for block in self.blocks:
            ctx, val = block(ctx, val)

        # Prediction for step t from the streams at t-1 (never sees r_t) and the skill s_t.
        prev_ctx = torch.cat([self.start[0].expand(B, 1, -1), ctx[:, :-1]], dim=1)  # (B, T, D)
        prev_val = torch.cat([self.start[1].expand(B, 1, -1), val[:, :-1]], dim=1)  # (B, T, D)
        feats = torch.cat([prev_ctx, prev_val, self.skill_embed(skills)], dim=-1)   # (B, T, 3D)
        logits = self.predictor(feats).squeeze(-1)                                   # (B, T)

        raw_gain = self.gain_head(val)                                     # (B, T, C)
        if cfg.mode == "original":
            gains = raw_gain
            mastery = self.mastery_head(ctx)                               # (B, T, C)
        else:
            gains = F.relu(raw_gain)
            base = torch.sigmoid(self.mastery_head(ctx[:, :1]))            # (B, 1, C)
            mastery = cumulative_mastery(base, gains, cfg.gain_scale)      # (B, T, C)
        return GainAKT2Output(logits=logits, mastery=mastery, gains=gains)


def cumulative_mastery(base: torch.Tensor, gains: torch.Tensor, scale: float) -> torch.Tensor:
    """Closed form of m_t = clamp(m_{t-1} + scale * g_t, 0, 1) from m_{-1} = base,
    valid for non-negative gains: min(1, base + scale * cumsum(g)).
    base: (B, 1, C) in [0, 1]; gains: (B, T, C) >= 0."""
    return torch.clamp(base + scale * torch.cumsum(gains, dim=1), max=1.0)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
