"""The reference system's GainAKT2 / GainAKT2Monitored (the pyKT fork clabra/pykt-toolkit), written
here from its published description, with exactly its state-dict names, so that its checkpoints load
key by key (cmkt.runs.importer). Never trained here: it only scores (model kind `gainakt2-ref`).

The architecture (legacy path of pykt/models/gainakt2.py):
- token = c + num_c * r, embedded twice: `context_embedding` and `value_embedding` (2C x d), each
  plus a learned `pos_embedding` (seq_len x d);
- blocks (post-LN): a = attn(Q, K from the context stream, V from the value stream, causal: position
  j sees positions <= j); value <- norm1_val(value + a); x = norm1_ctx(context + a);
  context <- norm2_ctx(x + ffn(x));
- prediction head: MLP over [context_j, value_j, concept_embedding(target_j)] -> P(correct at j+1);
- `mastery_head` (on the context stream) and `gain_head` (on the value stream), d -> C.

pyKT's protocol: the model is called as model(c, r, cshft): position j has seen steps <= j and
predicts step j + 1, whose concept is the target. Mastery at position j is the mastery after step j.

Variants: `original` (the raw heads), `cumulative` (GainAKT2Monitored, cumulative version): gains =
relu(gain_head(value)), m_0 = sigmoid(mastery_head(context_0)), m_j = clamp(m_{j-1} + 0.1 g_j, 0, 1).
With g >= 0 that recursion is min(1, m_0 + 0.1 * (g_1 + ... + g_j)): computed with one cumsum.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn

from cmkt.model.config import _check_number

VARIANTS = ("cumulative", "original")
GAIN_SCALE = 0.1          # a literal in the reference (not a config value)
KIND = "gainakt2-ref"


@dataclass
class RefConfig:
    """What rebuilds a reference model. n_heads cannot be read from the weights."""

    num_c: int
    seq_len: int = 200
    d_model: int = 256
    n_heads: int = 8
    num_encoder_blocks: int = 4
    d_ff: int = 768
    dropout: float = 0.2
    variant: str = "cumulative"
    kind = KIND
    predictor = None          # no mastery/difficulty/momentary parts

    def __post_init__(self):
        _check_number("num_c", self.num_c, lo=1, hi=10_000_000, integer=True)
        _check_number("seq_len", self.seq_len, lo=2, hi=1_000_000, integer=True)
        _check_number("d_model", self.d_model, lo=1, hi=65_536, integer=True)
        _check_number("n_heads", self.n_heads, lo=1, hi=4096, integer=True)
        _check_number("num_encoder_blocks", self.num_encoder_blocks, lo=0, hi=1000, integer=True)
        _check_number("d_ff", self.d_ff, lo=1, hi=1_000_000, integer=True)
        _check_number("dropout", self.dropout, lo=0, hi=1)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}")

    # what the rest of cmkt reads off any model config
    @property
    def num_skills(self) -> int:
        return self.num_c

    @property
    def mode(self) -> str:
        return KIND

    @property
    def max_len(self) -> int:
        return self.seq_len

    def to_dict(self) -> dict:
        return {"kind": KIND, "mode": KIND, "num_skills": self.num_c, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "RefConfig":
        d = dict(d)
        kind, mode = d.pop("kind", KIND), d.pop("mode", KIND)
        if kind != KIND or mode != KIND:
            raise ValueError(f"a {KIND} config cannot hold kind {kind!r} / mode {mode!r}")
        n = d.pop("num_skills", None)
        if n is not None and d.get("num_c", n) != n:
            raise ValueError(f"num_skills {n} and num_c {d['num_c']} disagree")
        d.setdefault("num_c", n)
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {KIND} config keys: {sorted(unknown)}")
        return cls(**d)


class MultiHeadAttention(nn.Module):
    """Q and K from the context stream, V from the value stream."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.d_k = n_heads, d_model // n_heads
        self.query_proj = nn.Linear(d_model, d_model)
        self.key_proj = nn.Linear(d_model, d_model)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ctx: torch.Tensor, val: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, d = ctx.shape
        H, dk = self.n_heads, self.d_k
        q = self.query_proj(ctx).view(B, L, H, dk).transpose(1, 2)         # (B, H, L, dk)
        k = self.key_proj(ctx).view(B, L, H, dk).transpose(1, 2)
        v = self.value_proj(val).view(B, L, H, dk).transpose(1, 2)
        scores = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(dk)  # (B, H, L, L)
        scores = scores.masked_fill(mask, -1e9)
        attn = torch.softmax(scores, dim=-1).to(v.dtype)
        out = (attn @ v).transpose(1, 2).contiguous().view(B, L, d)        # (B, L, d)
        return self.dropout(self.output_proj(out))


class EncoderBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))
        self.norm1_ctx = nn.LayerNorm(d_model)
        self.norm1_val = nn.LayerNorm(d_model)
        self.norm2_ctx = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ctx, val, mask):
        a = self.attn(ctx, val, mask)
        val = self.norm1_val(val + a)
        x = self.norm1_ctx(ctx + a)
        ctx = self.norm2_ctx(x + self.dropout(self.ffn(x)))
        return ctx, val


@dataclass
class RefOutput:
    """pyKT's alignment: position j has seen steps <= j."""

    predictions: torch.Tensor   # (B, L) P(correct at step j + 1 on its target concept)
    mastery: torch.Tensor       # (B, L, C) mastery after step j
    gains: torch.Tensor         # (B, L, C) gain of step j


class RefModel(nn.Module):
    """GainAKT2 as published, both heads on. forward() follows pyKT; forward_steps() gives cmkt's
    step alignment for scoring (cmkt.analysis.scoring, windowing "fresh")."""

    windowing = "fresh"         # long students: windows of seq_len steps, each starting afresh (pyKT)

    def __init__(self, cfg: RefConfig):
        super().__init__()
        self.cfg = cfg
        C, d = cfg.num_c, cfg.d_model
        self.context_embedding = nn.Embedding(2 * C, d)
        self.value_embedding = nn.Embedding(2 * C, d)
        self.concept_embedding = nn.Embedding(C, d)
        self.pos_embedding = nn.Embedding(cfg.seq_len, d)
        self.encoder_blocks = nn.ModuleList(EncoderBlock(d, cfg.n_heads, cfg.d_ff, cfg.dropout)
                                            for _ in range(cfg.num_encoder_blocks))
        self.prediction_head = nn.Sequential(nn.Linear(3 * d, cfg.d_ff), nn.ReLU(), nn.Dropout(cfg.dropout),
                                             nn.Linear(cfg.d_ff, 1))
        self.mastery_head = nn.Linear(d, C)
        self.gain_head = nn.Linear(d, C)

    def prior_mastery(self):
        return None             # mastery starts from the first step's context, not a prior

    def forward(self, q: torch.Tensor, r: torch.Tensor, qry: torch.Tensor | None = None) -> RefOutput:
        """q, r: (B, L) concepts and responses; qry: (B, L) the target concepts (pyKT passes cshft)."""
        B, L = q.shape
        if L > self.cfg.seq_len:
            raise ValueError(f"a window of {L} steps is longer than the model's seq_len {self.cfg.seq_len}")
        tokens = q + self.cfg.num_c * r.long()                              # (B, L)
        target = q if qry is None else qry
        mask = torch.triu(torch.ones(L, L, dtype=torch.bool, device=q.device), diagonal=1)
        pos = self.pos_embedding(torch.arange(L, device=q.device))          # (L, d)
        ctx = self.context_embedding(tokens) + pos                          # (B, L, d)
        val = self.value_embedding(tokens) + pos
        for block in self.encoder_blocks:
            ctx, val = block(ctx, val, mask)
        h = torch.cat([ctx, val, self.concept_embedding(target)], dim=-1)  # (B, L, 3d)
        pred = torch.sigmoid(self.prediction_head(h).squeeze(-1))         # (B, L)
        if self.cfg.variant == "original":
            return RefOutput(pred, self.mastery_head(ctx), self.gain_head(val))
        gains = torch.relu(self.gain_head(val))                             # (B, L, C) >= 0
        m0 = torch.sigmoid(self.mastery_head(ctx[:, :1]))                   # (B, 1, C)
        steps = torch.cat([m0, GAIN_SCALE * gains[:, 1:]], dim=1)           # the gain of step 0 is not used
        mastery = torch.cumsum(steps, dim=1).clamp(0.0, 1.0)                # (B, L, C)
        return RefOutput(pred, mastery, gains)

    def forward_steps(self, skills: torch.Tensor, responses: torch.Tensor):
        """cmkt's alignment over one window (B, T): (probs (B, T), mastery (B, T, C), gains (B, T, C))
        with probs[:, t] the prediction for step t made from steps < t of the window. The first step
        of a window has no prediction in pyKT's protocol: NaN there."""
        qry = torch.cat([skills[:, 1:], skills[:, -1:]], dim=1)             # the last target is unused
        out = self.forward(skills, responses, qry)
        nan = torch.full_like(out.predictions[:, :1], float("nan"))
        probs = torch.cat([nan, out.predictions[:, :-1]], dim=1)           # (B, T)
        return probs, out.mastery, out.gains


def check_state(state: dict) -> None:
    """Refuse weights that are not finite numbers."""
    for name, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"{name} holds values that are not finite numbers")
