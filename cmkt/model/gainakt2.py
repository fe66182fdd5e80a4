"""GainAKT2: a two-stream knowledge-tracing transformer with mastery and gain heads."""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from cmkt.model.config import ModelConfig
from cmkt.model.dropout import Dropout
from cmkt.model.gap import cumulative_mastery, gap_mastery
from cmkt.model.pairwise import PairwiseHistory

PART_NAMES = ("mastery", "difficulty", "momentary")


@dataclass
class GainAKT2Output:
    logits: torch.Tensor   # (B, T) logit of P(r_t = 1 | steps < t, s_t)
    mastery: torch.Tensor  # (B, T, C) mastery after step t
    gains: torch.Tensor    # (B, T, C) learning gain credited by step t
    parts: torch.Tensor | None = None  # (B, T, 3) mastery/difficulty/momentary; they sum to logits
    start: torch.Tensor | None = None  # (B, C) mastery before the first kept step (m_{t-1} of it)
    members: list | None = None        # an ensemble's members' own outputs (each is trained on its own)
    # gains >= 0 and mastery never falls, by construction (cumulative mode): the non-negative and
    # monotonicity losses are then exactly 0 with a zero gradient, and are not computed
    by_construction: bool = False
    # mastery moves by exactly gain_scale * gains each step (cumulative mode, gap accumulation: the
    # clamp at 1 is never reached): the consistency loss is then 0 up to rounding, and not computed
    consistent_by_construction: bool = False


def mean_output(outs: list[GainAKT2Output]) -> GainAKT2Output:
    """An ensemble's output: the means of its members' (the parts still sum to the logit; a mean
    of monotone, bounded mastery curves and of non-negative gains is monotone, bounded and
    non-negative), with the members' own outputs kept for their losses."""
    def mean(name):
        xs = [getattr(o, name) for o in outs]
        return None if xs[0] is None else torch.stack(xs).mean(0)
    return GainAKT2Output(logits=mean("logits"), mastery=mean("mastery"), gains=mean("gains"),
                          parts=mean("parts"), start=mean("start"), members=outs,
                          by_construction=all(o.by_construction for o in outs),
                          consistent_by_construction=all(o.consistent_by_construction for o in outs))


# Under CPU autocast, attention runs in float32: the CPU flash-attention backward is about 3x
# slower in bfloat16, while the linear layers around it gain 3-4x (docs/experiments, "Where bfloat16 helps";
# which also times it with this switched off).
CPU_ATTENTION_FLOAT32 = True


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """Causal scaled dot-product attention; (B, H, T, Dh) each; float32 under CPU autocast."""
    if CPU_ATTENTION_FLOAT32 and q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True,
                                                  dropout_p=dropout_p)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)


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
        self.ff_ctx = nn.Sequential(nn.Linear(d, cfg.d_ff), nn.GELU(), Dropout(cfg.dropout, cfg.dropout_kernel), nn.Linear(cfg.d_ff, d))
        self.ff_val = nn.Sequential(nn.Linear(d, cfg.d_ff), nn.GELU(), Dropout(cfg.dropout, cfg.dropout_kernel), nn.Linear(cfg.d_ff, d))
        self.drop = Dropout(cfg.dropout, cfg.dropout_kernel)
        self.attn_dropout = cfg.attention_dropout

    def forward(self, ctx: torch.Tensor, val: torch.Tensor):
        B, T, D = ctx.shape
        q, k = self.qk(ctx).view(B, T, 2, self.h, D // self.h).permute(2, 0, 3, 1, 4)  # (B, H, T, Dh) each
        v = self.v(val).view(B, T, self.h, D // self.h).transpose(1, 2)                   # (B, H, T, Dh)
        att = causal_attention(q, k, v, self.attn_dropout if self.training else 0.0)     # (B, H, T, Dh)
        att = att.transpose(1, 2).reshape(B, T, D)                                         # (B, T, D)
        ctx = self.ln_ctx1(ctx + self.drop(self.out_ctx(att)))
        val = self.ln_val1(val + self.drop(self.out_val(att)))
        ctx = self.ln_ctx2(ctx + self.drop(self.ff_ctx(ctx)))
        val = self.ln_val2(val + self.drop(self.ff_val(val)))
        return ctx, val


class SkillReadout(nn.Module):
    """Attention with the target skill s_t as query over the streams of steps < t
    (keys from the context stream, values from the value stream)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, self.h = cfg.d_model, cfg.n_heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        self.dropout = cfg.attention_dropout

    def forward(self, query: torch.Tensor, prev_ctx: torch.Tensor, prev_val: torch.Tensor) -> torch.Tensor:
        """query: (B, T, D) target-skill embedding of step t; prev_*: (B, T, D) the streams
        shifted by one (row t holds step t-1, row 0 the start vector). Row t attends to rows <= t."""
        B, T, D = query.shape
        split = (lambda x: x.view(B, T, self.h, D // self.h).transpose(1, 2))           # (B, H, T, Dh)
        att = causal_attention(split(self.q(query)), split(self.k(prev_ctx)), split(self.v(prev_val)),
                               self.dropout if self.training else 0.0)                  # (B, H, T, Dh)
        return self.out(att.transpose(1, 2).reshape(B, T, D))                            # (B, T, D)


class GainAKT2(nn.Module):
    """Token = s_t + C * r_t, embedded into a context and a value stream.

    mode "original":   gains = linear(value), mastery = linear(context), per step.
    mode "cumulative": gains >= 0 (ReLU of a linear head), mastery starts from a base in [0, 1]
                       and only accumulates gains: m_t = min(1, m_{t-1} + gain_scale * g_t).
    gain_encoder:        what the gain head reads: the value stream ("value") or an LSTM of its
                         own ("recurrent").
    predictor "mlp":     logit = MLP(streams of step t-1, skill s_t).
    predictor "mastery": logit = mastery part (increasing in m_{t-1}[s_t]) + difficulty(s_t)
                         + momentary part (the MLP, bounded by momentary_bound).
    """

    # the modules that make mastery and nothing else (the gains' own encoder and head, the prior):
    # the mastery phase (TrainConfig.mastery_epochs) trains them alone. In cumulative mode with
    # gain_encoder "recurrent" the prediction reads them only through the mastery part.
    MASTERY_ONLY = ("gain_embed", "gain_rnn", "gain_head", "prior")

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.stack == "pairwise":                          # fitted after training (cmkt/train/stacking.py)
            self.stack = PairwiseHistory(cfg.num_skills)
        if cfg.members > 1:                                  # an ensemble: members (and its stack)
            self.members = nn.ModuleList(GainAKT2(dataclasses.replace(cfg, members=1, stack="none"))
                                         for _ in range(cfg.members))
            return
        C, d = cfg.num_skills, cfg.d_model
        self.ctx_embed = nn.Embedding(2 * C, d)
        self.val_embed = nn.Embedding(2 * C, d)
        self.ctx_pos = nn.Embedding(cfg.max_len, d)
        self.val_pos = nn.Embedding(cfg.max_len, d)
        self.skill_embed = nn.Embedding(C, d)
        self.start = nn.Parameter(torch.zeros(2, d))  # stands in for (context, value) before step 0
        self.blocks = nn.ModuleList(TwoStreamBlock(cfg) for _ in range(cfg.n_blocks))
        self.emb_drop = Dropout(cfg.dropout, cfg.dropout_kernel)
        n_in = (4 if cfg.readout == "attention" else 3) * d + cfg.recurrent
        if cfg.readout == "attention":
            self.readout = SkillReadout(cfg)
        if cfg.recurrent:
            self.rnn_embed = nn.Embedding(2 * C, d)
            self.rnn = nn.LSTM(d, cfg.recurrent, batch_first=True)
            if cfg.recurrent_head == "skill":
                self.rnn_out = nn.Linear(cfg.recurrent, C)                 # DKT's per-skill output
        self.predictor = nn.Sequential(
            nn.Linear(n_in, cfg.d_ff), nn.GELU(), Dropout(cfg.dropout, cfg.dropout_kernel),
            nn.Linear(cfg.d_ff, cfg.d_ff // 2), nn.GELU(), nn.Linear(cfg.d_ff // 2, 1))
        self.mastery_head = nn.Linear(d, C)
        if cfg.gain_encoder == "recurrent":
            self.gain_embed = nn.Embedding(2 * C, d)
            self.gain_rnn = nn.LSTM(d, cfg.gain_hidden, batch_first=True)
        self.gain_head = nn.Linear(d if cfg.gain_encoder == "value" else cfg.gain_hidden, C)
        if cfg.base == "prior" or cfg.predictor == "mastery":
            self.prior = nn.Parameter(torch.zeros(C))          # mastery before any step (logit / raw)
        if cfg.predictor == "mastery":
            self.difficulty = nn.Embedding(C, 1)
            nn.init.zeros_(self.difficulty.weight)
            # original mode: slope (through softplus, > 0) and offset; cumulative: slip and guess
            self.mastery_weight = nn.Parameter(torch.full((), -2.0 if cfg.mode == "cumulative" else 0.0))
            self.mastery_bias = nn.Parameter(torch.full((), -1.0 if cfg.mode == "cumulative" else 0.0))

    # ---- mastery ----------------------------------------------------------------------
    def gain_input(self, tokens: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        """What the gain head reads after step t (gain_encoder): tokens (B, T), val (B, T, D)
        the value stream -> (B, T, D) or (B, T, G)."""
        if self.cfg.gain_encoder == "recurrent":
            return self.gain_rnn(self.emb_drop(self.gain_embed(tokens)))[0]         # (B, T, G)
        return val                                                                  # (B, T, D)

    def _start_mastery(self, ctx: torch.Tensor) -> torch.Tensor:
        """(B, C) mastery before the first accumulated gain of a cold-start window."""
        cfg = self.cfg
        if cfg.mode == "original":
            return self.prior.expand(ctx.shape[0], -1) if hasattr(self, "prior") else ctx.new_zeros(ctx.shape[0], cfg.num_skills)
        if cfg.base == "prior":
            return torch.sigmoid(self.prior).expand(ctx.shape[0], -1)
        return torch.sigmoid(self.mastery_head(ctx[:, 0]))

    def prior_mastery(self) -> torch.Tensor | None:
        """(C,) mastery before any step, where the model has one (cumulative with base 'prior')."""
        if self.cfg.members > 1:
            priors = [m.prior_mastery() for m in self.members]
            return None if priors[0] is None else torch.stack(priors).mean(0)
        if self.cfg.mode == "cumulative" and self.cfg.base == "prior":
            return torch.sigmoid(self.prior)
        return None

    def mastery_part(self, m_prev: torch.Tensor) -> torch.Tensor:
        """The mastery part of the logit, increasing in m = m_{t-1}[s_t]. Cumulative mode reads
        mastery as in BKT: P = guess + (1 - slip - guess) * m, with guess and slip learned and each
        below 0.5, and the part is logit(P): bounded, so mastery at the ceiling cannot outshout the
        other parts. Original mode (unbounded mastery): a * m + b with a > 0. (B, T)"""
        if self.cfg.mode == "original":
            return F.softplus(self.mastery_weight + 0.5413) * m_prev + self.mastery_bias  # softplus(0.5413) = 1
        guess, slip = self.guess_slip()
        p = guess + (1 - slip - guess) * m_prev.clamp(0.0, 1.0)
        return torch.log(p) - torch.log1p(-p)

    def guess_slip(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mastery reading's guess and slip (cumulative mode), each in (0, 0.5)."""
        return 0.5 * torch.sigmoid(self.mastery_bias), 0.5 * torch.sigmoid(self.mastery_weight)

    def first_layer(self, ctx: torch.Tensor, val: torch.Tensor, skills: torch.Tensor,
                    extra: list[torch.Tensor]) -> torch.Tensor:
        """The predictor's first layer on [prev_ctx, prev_val, skill_e, *extra] (the streams shifted
        by one step, the start vectors in front), computed without building that input: the
        streams' part on the unshifted streams, then shifted; the skill's part looked up in a
        (C, F) table, skill_embed @ W_skill^T (a third fewer multiply-adds at the quick size).
        ctx, val: (B, T, D); skills: (B, T); extra: (B, T, *) each -> (B, T, F)."""
        first, d = self.predictor[0], self.cfg.d_model
        B, T = skills.shape
        w_streams, w_skill, w_extra = first.weight[:, :2 * d], first.weight[:, 2 * d:3 * d], first.weight[:, 3 * d:]
        # the bias goes with the streams' part (inside the matmul: the layer's dtype under autocast)
        after = F.linear(torch.cat([ctx, val], dim=-1), w_streams, first.bias)      # (B, T, F) of step t
        before = F.linear(self.start.reshape(1, 1, 2 * d), w_streams, first.bias)   # (1, 1, F) before step 0
        out = torch.cat([before.expand(B, 1, -1), after[:, :-1]], dim=1)            # (B, T, F) of step t-1
        if self.cfg.num_skills <= B * T:                                            # the table is the cheaper
            out = out + F.embedding(skills, self.skill_embed.weight @ w_skill.t())  # (C, F) table, looked up
        else:                                                                       # a few steps, many skills
            out = out + F.linear(self.skill_embed(skills), w_skill)
        if extra:
            out = out + F.linear(torch.cat(extra, dim=-1), w_extra)
        return out

    def forward(self, skills: torch.Tensor, responses: torch.Tensor,
                start: torch.Tensor | None = None, keep_from: torch.Tensor | None = None) -> GainAKT2Output:
        """skills, responses: (B, T) long, padding anywhere after a sequence's end.
        A window that continues a student (cumulative mode) passes `start` (B, C), the mastery
        the previous window ended with, and `keep_from` (B,), its first new step: the steps
        before it are context only, and mastery accumulates from `start` at keep_from.
        Rows with keep_from == 0 start cold (their `start` row is ignored)."""
        if self.cfg.members > 1:
            out = mean_output([m(skills, responses, start=start, keep_from=keep_from) for m in self.members])
        else:
            out = self.network(skills, responses, start, keep_from)
        stack = getattr(self, "stack", None)
        return stacked(out, stack, skills, responses, self.cfg.momentary_bound) if stack is not None and stack.active else out

    def network(self, skills: torch.Tensor, responses: torch.Tensor,
                start: torch.Tensor | None = None, keep_from: torch.Tensor | None = None) -> GainAKT2Output:
        """One model's output, before any stack (forward's arguments)."""
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

        # Prediction for step t from the streams at t-1 (never sees r_t) and the skill s_t:
        # predictor([prev_ctx, prev_val, skill_e, readout?, h_prev?]), its first layer computed
        # piece by piece (first_layer: the same sum)
        extra = []
        if cfg.readout == "attention":
            prev_ctx = torch.cat([self.start[0].expand(B, 1, -1), ctx[:, :-1]], dim=1)  # (B, T, D)
            prev_val = torch.cat([self.start[1].expand(B, 1, -1), val[:, :-1]], dim=1)  # (B, T, D)
            extra.append(self.readout(self.skill_embed(skills), prev_ctx, prev_val))
        if cfg.recurrent:
            h = self.rnn(self.emb_drop(self.rnn_embed(tokens)))[0]                  # (B, T, H) after step t
            h_prev = torch.cat([h.new_zeros(B, 1, h.shape[-1]), h[:, :-1]], dim=1)   # (B, T, H) state after t-1
            extra.append(h_prev)
        x = self.first_layer(ctx, val, skills, extra)                                # (B, T, F)
        for layer in itertools.islice(self.predictor, 1, None):
            x = layer(x)
        streams = x.squeeze(-1)                                                      # (B, T)
        if cfg.recurrent and cfg.recurrent_head == "skill":
            per_skill = self.rnn_out(self.emb_drop(h_prev))                          # (B, T, C)
            streams = streams + per_skill.gather(-1, skills.unsqueeze(-1)).squeeze(-1)

        raw_gain = self.gain_head(self.gain_input(tokens, val))            # (B, T, C)
        if cfg.mode == "original":
            gains = raw_gain
            mastery = self.mastery_head(ctx)                               # (B, T, C)
            m0 = self._start_mastery(ctx)                                  # (B, C)
        else:
            m0, first = self._start_mastery(ctx), torch.zeros(B, dtype=torch.long, device=skills.device)
            if cfg.base == "context":
                first = first + 1                                          # step 1 made the base
            # the guarantees are computed in float32, also under mixed-precision autocast
            with torch.autocast(skills.device.type, enabled=False):
                m0, raw_gain = m0.float(), raw_gain.float()
                if keep_from is not None:
                    chained = keep_from > 0
                    if start is not None:
                        m0 = torch.where(chained[:, None], start.float(), m0)
                    first = torch.where(chained, keep_from, first)
                live = (pos[None, :] >= first[:, None]).unsqueeze(-1)      # (B, T, 1) gains that count
                gains = F.relu(raw_gain) * live
                if cfg.accumulation == "gap":                              # gap_gains, then cumulative_mastery
                    gains, mastery = gap_mastery(m0, gains, cfg.gain_scale)    # (B, T, C) each
                else:
                    mastery = cumulative_mastery(m0.unsqueeze(1), gains, cfg.gain_scale)  # (B, T, C)

        flags = dict(by_construction=cfg.mode == "cumulative",
                     consistent_by_construction=cfg.mode == "cumulative" and cfg.accumulation == "gap")
        if cfg.predictor == "mlp":
            return GainAKT2Output(logits=streams, mastery=mastery, gains=gains, start=m0, **flags)
        # mastery of s_t before step t: m0 at t = 0, then m_{t-1} (picked before it is shifted)
        m_skill = torch.cat([m0.gather(-1, skills[:, :1]),
                             mastery[:, :-1].gather(-1, skills[:, 1:].unsqueeze(-1)).squeeze(-1)], dim=1)  # (B, T)
        if cfg.mode == "cumulative" and keep_from is not None:
            # the context steps of a continuing window hold its start mastery
            ctx_steps = pos[None, :] <= keep_from[:, None]                  # (B, T)
            m_skill = torch.where(ctx_steps, m0.gather(-1, skills), m_skill)
        bound = cfg.momentary_bound
        if bound is None:
            momentary = streams
        elif bound == 0:
            momentary = torch.zeros_like(streams)
        else:
            momentary = bound * torch.tanh(streams / bound)
        parts = torch.stack([self.mastery_part(m_skill), self.difficulty(skills).squeeze(-1), momentary], dim=-1)
        return GainAKT2Output(logits=parts.sum(-1), mastery=mastery, gains=gains, parts=parts, start=m0,
                              **flags)


def stacked(out: GainAKT2Output, stack: PairwiseHistory, skills: torch.Tensor, responses: torch.Tensor,
            bound: float | None) -> GainAKT2Output:
    """The network's output blended with its fitted pairwise stack at weight w:
    logit = (1 - w) * network + w * (b[s_t] + history). With parts, b[s_t] joins the difficulty
    part and the history sum the momentary part (bounded by momentary_bound like the rest of it),
    so the parts still sum to the logit; mastery and gains are the network's, untouched."""
    w = stack.blend.float()
    intercept, history = stack(skills, responses)                                  # (B, T) each
    if out.parts is None:                                                          # mlp predictor
        return dataclasses.replace(out, logits=(1 - w) * out.logits.float() + w * (intercept + history))
    parts = out.parts.float()
    momentary = (1 - w) * parts[..., 2] + w * history
    if bound is not None:
        momentary = bound * torch.tanh(momentary / bound) if bound > 0 else torch.zeros_like(momentary)
    parts = torch.stack([(1 - w) * parts[..., 0], (1 - w) * parts[..., 1] + w * intercept, momentary], dim=-1)
    return dataclasses.replace(out, logits=parts.sum(-1), parts=parts)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
