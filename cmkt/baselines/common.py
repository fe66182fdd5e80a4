"""What the baseline kinds share: a config base class (kind and mode are the kind's name) and
the gains of a knowledge state (g_t = m_t - m_{t-1}, g_1 = m_1 - the prior)."""
from __future__ import annotations

from dataclasses import asdict, fields

import torch

from cmkt.model.config import _check_number


class BaselineConfig:
    """Mixin for the baseline config dataclasses. `kind` (and `mode`, what tables show) is the
    model kind; to_dict() stores both so a run's config.json names it."""

    kind = "baseline"
    predictor = None                 # no mastery/difficulty/momentary parts

    @property
    def mode(self) -> str:
        return self.kind

    def _check_common(self):
        _check_number("num_skills", self.num_skills, lo=1, integer=True)
        if hasattr(self, "max_len"):
            _check_number("max_len", self.max_len, lo=2, hi=1_000_000, integer=True)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mode": self.kind, **asdict(self)}

    @classmethod
    def field_names(cls) -> set:
        return {f.name for f in fields(cls)}

    @classmethod
    def from_dict(cls, d: dict):
        d = dict(d)
        kind = d.pop("kind", cls.kind)
        mode = d.pop("mode", cls.kind)
        if kind != cls.kind or mode != cls.kind:
            raise ValueError(f"a {cls.kind} config cannot hold kind {kind!r} / mode {mode!r}")
        unknown = set(d) - cls.field_names()
        if unknown:
            raise ValueError(f"unknown {cls.kind} config keys: {sorted(unknown)}")
        return cls(**d)


def state_gains(mastery: torch.Tensor, m0: torch.Tensor, start: torch.Tensor | None,
                keep_from: torch.Tensor | None) -> torch.Tensor:
    """g_t = m_t - m_{t-1} with m_0 = m0 (B, C). A window that continues a student (keep_from > 0)
    takes `start`, the state its previous window ended with, as the state before its first kept
    step, so scored gains are exactly the differences of scored states. (B, T, C)"""
    prev = torch.cat([m0.unsqueeze(1), mastery[:, :-1]], dim=1)
    if start is not None and keep_from is not None:
        T = mastery.shape[1]
        at = (torch.arange(T, device=mastery.device)[None, :] == keep_from[:, None]) & (keep_from[:, None] > 0)
        prev = torch.where(at.unsqueeze(-1), start.to(prev.dtype).unsqueeze(1), prev)
    return mastery - prev


def check_probabilities(state: dict, names) -> None:
    """Refuse parameters that are not probabilities (finite, in [0, 1])."""
    for name in names:
        v = state[name]
        if not torch.isfinite(v).all():
            raise ValueError(f"{name} holds values that are not finite numbers")
        if (v < 0).any() or (v > 1).any():
            bad = float(v[(v < 0) | (v > 1)][0])
            raise ValueError(f"{name} must hold probabilities in [0, 1], not {bad:g}")


def check_finite(state: dict) -> None:
    for name, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"{name} holds values that are not finite numbers")
