"""Model configuration: everything needed to rebuild a GainAKT2 model."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

MODES = ("original", "cumulative")
PREDICTORS = ("mlp", "mastery")
BASES = ("context", "prior")
ACCUMULATIONS = ("linear", "gap")
READOUTS = ("none", "attention")
RECURRENT_HEADS = ("none", "skill")
GAIN_ENCODERS = ("value", "recurrent")
DROPOUT_KERNELS = ("torch", "fast")
STACKS = ("none", "pairwise")

# Auxiliary loss weight sets of the seed system, in the order
# non_negative, monotonicity, mastery_performance, gain_performance, sparsity, consistency.
LOSS_WEIGHT_SETS = {
    "plain": (0.1, 0.1, 0.3, 0.3, 0.1, 0.1),
    "enhanced": (0.0, 0.1, 0.8, 0.8, 0.2, 0.3),
    # plain with 3x the sparsity weight and the mastery hinge (anchored at 0.5) at 0.8: mastery before a wrong answer is
    # held under 0.4, so it stays off the ceiling (ASSIST2015 standard: 1.8% of steps at the
    # ceiling instead of 4.4%; docs/RESULTS.md)
    "anchored": (0.1, 0.1, 0.8, 0.3, 0.3, 0.1),
    # anchored with the mastery hinge at 1.2: with the mastery phase (mastery_epochs) and selection
    # on AUC, it keeps saturation down (ASSIST2015 standard: 1.70% against 2.41% at 0.8; docs/RESULTS.md)
    "anchored_strong": (0.1, 0.1, 1.2, 0.3, 0.3, 0.1),
    # the hinge at 1.4, for the quick cumulative preset (one model, no mastery phase): ASSIST2009
    # saturation 2.23% -> 1.49% at mastery AUC 0.6904 -> 0.6891 (seed 1; docs/experiments, wave 3)
    "anchored_quick": (0.1, 0.1, 1.4, 0.3, 0.3, 0.1),
}
LOSS_NAMES = ("non_negative", "monotonicity", "mastery_performance",
              "gain_performance", "sparsity", "consistency")
UNBOUNDED = ("none", "inf", "infinity", "unbounded", "")

# Options removed in 0.2 (measured, never a default: docs/MODEL.md, "Options"). A saved config that
# names one still loads where the old value rebuilds the same model; otherwise it is refused.
REMOVED_GAIN_ENCODERS = {
    # the value stream without a gradient back: the same forward pass, so the same model
    "detached": "value",
}
REMOVED_LOSS_SETS = {"sparse": (0.1, 0.1, 0.3, 0.3, 0.3, 0.1)}


def parse_bound(value) -> float | None:
    """momentary_bound: a finite number >= 0, or None (unbounded; also 'inf', 'none')."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in UNBOUNDED:
            return None
        value = float(value)
    value = float(value)
    if math.isinf(value) and value > 0:
        return None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"momentary_bound must be a number >= 0 or 'inf', not {value!r}")
    return value


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


def _check_number(name, value, lo=None, hi=None, lo_open=False, integer=False):
    """A finite number (an int when integer=True) inside [lo, hi] ((lo, hi] with lo_open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ValueError(f"{name} must be {'a whole number' if integer else 'a number'}, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, not {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi}, not {value!r}")


@dataclass
class ModelConfig:
    """GainAKT2 hyper-parameters. Saved into every run: Model(ModelConfig(**saved)).

    The defaults of the options added after the first release (predictor, base, accumulation,
    readout, attn_dropout) reproduce the first release, so older checkpoints rebuild as they
    were trained; the presets choose the measured best settings for new runs."""

    num_skills: int
    max_len: int = 200
    d_model: int = 128
    n_heads: int = 4
    n_blocks: int = 2
    d_ff: int = 256
    dropout: float = 0.1
    mode: str = "cumulative"
    gain_scale: float = 0.1
    # how P(correct) is made: "mlp" over the streams, or "mastery" = mastery + difficulty + momentary
    predictor: str = "mlp"
    # largest |momentary| part in logit units (mastery predictor only); None: unbounded
    momentary_bound: float | None = 1.0
    # cumulative mastery before the first gain: "context" (sigmoid(head(context of step 1)), gains
    # from step 2 on) or "prior" (a learned per-skill prior, gains from step 1 on)
    base: str = "context"
    # how gains add up: "linear" (m + scale*g, clamped at 1) or "gap" (each gain closes a share of
    # the gap to 1: diminishing returns, never clamped)
    accumulation: str = "linear"
    # extra input of the predictor: "attention" reads past steps with the target skill as query
    readout: str = "none"
    # dropout inside attention; None: the same as dropout (0 allows the fused kernel)
    attn_dropout: float | None = None
    # how dropout masks are drawn on the CPU: "torch" (one Bernoulli draw per element) or "fast"
    # (16-bit uniforms, four per 64-bit draw; p exact to 1/65536; cmkt/model/dropout.py)
    dropout_kernel: str = "torch"
    # hidden size of an LSTM over the interactions whose state after step t-1 is a further input of
    # the predictor (0: none). It feeds the predictor only, never mastery or gains.
    recurrent: int = 0
    # with recurrent > 0: also read the LSTM state through a per-skill output layer at s_t (as DKT
    # does) and add it to the momentary part ("skill"), or not ("none")
    recurrent_head: str = "none"
    # what the gain head reads: "value" (the transformer's value stream, shared with the
    # predictor) or "recurrent" (an LSTM over the interactions of its own, gain_hidden wide)
    gain_encoder: str = "value"
    gain_hidden: int = 128
    # an ensemble: this many models of this config, trained side by side (each on its own losses,
    # from its own initial weights); the prediction, its parts, mastery and gains are their means.
    # Long students' windows all start from the members' mean mastery.
    members: int = 1
    # a model of another kind stacked on the network: "pairwise" (cmkt/model/pairwise.py: logistic
    # regression on every skill's successes and failures so far, per target skill), fitted after
    # training and blended with the network's logit at a weight chosen on validation; its history
    # sum joins the momentary part (so momentary_bound bounds it; with bound 0 it is not fitted)
    stack: str = "none"

    def __post_init__(self):
        _check_choice("mode", self.mode, MODES)
        _check_choice("predictor", self.predictor, PREDICTORS)
        _check_choice("base", self.base, BASES)
        _check_choice("accumulation", self.accumulation, ACCUMULATIONS)
        _check_choice("readout", self.readout, READOUTS)
        _check_choice("recurrent_head", self.recurrent_head, RECURRENT_HEADS)
        _check_choice("gain_encoder", self.gain_encoder, GAIN_ENCODERS)
        _check_number("gain_hidden", self.gain_hidden, lo=1, hi=8192, integer=True)
        _check_choice("dropout_kernel", self.dropout_kernel, DROPOUT_KERNELS)
        _check_choice("stack", self.stack, STACKS)
        _check_number("num_skills", self.num_skills, lo=1, integer=True)
        _check_number("max_len", self.max_len, lo=2, hi=100_000, integer=True)
        _check_number("d_model", self.d_model, lo=1, hi=65_536, integer=True)
        _check_number("n_heads", self.n_heads, lo=1, integer=True)
        _check_number("n_blocks", self.n_blocks, lo=0, hi=64, integer=True)
        _check_number("d_ff", self.d_ff, lo=2, hi=262_144, integer=True)
        _check_number("dropout", self.dropout, lo=0, hi=0.95)
        _check_number("recurrent", self.recurrent, lo=0, hi=8192, integer=True)
        _check_number("members", self.members, lo=1, hi=64, integer=True)
        if isinstance(self.attn_dropout, str):
            self.attn_dropout = None if self.attn_dropout.strip().lower() in UNBOUNDED else float(self.attn_dropout)
        if self.attn_dropout is not None:
            _check_number("attn_dropout", self.attn_dropout, lo=0, hi=0.95)
        # the cumulative guarantees need a positive, finite gain scale
        _check_number("gain_scale", self.gain_scale, lo=0, hi=100, lo_open=True)
        self.momentary_bound = parse_bound(self.momentary_bound)
        if self.predictor == "mastery" and self.mode == "cumulative" and self.base != "prior":
            # the context base is read from step 1 itself: predicting step 1 from it would leak r_1
            raise ValueError("predictor 'mastery' needs base 'prior' in cumulative mode")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")

    @property
    def attention_dropout(self) -> float:
        return self.dropout if self.attn_dropout is None else self.attn_dropout

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        d = dict(d)
        enc = d.get("gain_encoder")
        if enc in REMOVED_GAIN_ENCODERS:
            d["gain_encoder"] = REMOVED_GAIN_ENCODERS[enc]
        elif enc == "both":
            raise ValueError("gain_encoder 'both' was removed in cmkt 0.2 (measured no better than 'recurrent': "
                             "docs/MODEL.md); this model cannot be rebuilt, train it again")
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)
