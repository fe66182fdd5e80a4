"""DKT (Piech et al. 2015): an LSTM over the interactions (token s_t + C*r_t) with a per-skill
sigmoid output. The output after step t is the knowledge state m_t (a probability per skill);
the prediction for step t is the output after step t-1 read at s_t, so it never sees r_t."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from cmkt.model.config import _check_number
from cmkt.model.gainakt2 import GainAKT2Output
from cmkt.baselines.common import BaselineConfig, check_finite, state_gains


@dataclass
class DKTConfig(BaselineConfig):
    num_skills: int
    hidden: int = 200          # LSTM hidden size (200, as in the DKT / DKVMN comparisons)
    emb: int = 200             # interaction embedding size (an embedding of the one-hot token)
    dropout: float = 0.2       # on the embedding and on the LSTM output
    max_len: int = 200         # window length (longer students are cut into chained windows)
    kind = "dkt"

    def __post_init__(self):
        self._check_common()
        _check_number("hidden", self.hidden, lo=1, hi=65_536, integer=True)
        _check_number("emb", self.emb, lo=1, hi=65_536, integer=True)
        _check_number("dropout", self.dropout, lo=0, hi=0.95)


class DKT(nn.Module):
    def __init__(self, cfg: DKTConfig):
        super().__init__()
        self.cfg = cfg
        C = cfg.num_skills
        self.embed = nn.Embedding(2 * C, cfg.emb)
        self.lstm = nn.LSTM(cfg.emb, cfg.hidden, batch_first=True)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, C)

    def prior_logits(self) -> torch.Tensor:
        """(C,) the output before any step (zero LSTM state): the prior."""
        return self.out.bias

    def prior_mastery(self) -> torch.Tensor:
        return torch.sigmoid(self.prior_logits())

    def forward(self, skills: torch.Tensor, responses: torch.Tensor,
                start: torch.Tensor | None = None, keep_from: torch.Tensor | None = None) -> GainAKT2Output:
        """skills, responses: (B, T). The LSTM restarts in every window (the context steps of a
        continuing window rebuild its state); `start` only anchors the first kept gain."""
        B, T = skills.shape
        C = self.cfg.num_skills
        tokens = skills + C * responses
        h, _ = self.lstm(self.drop(self.embed(tokens)))                   # (B, T, H) after step t
        y = self.out(self.drop(h))                                        # (B, T, C) after step t
        prior = self.prior_logits().expand(B, 1, C)
        before = torch.cat([prior, y[:, :-1]], dim=1)                     # (B, T, C) after step t-1
        logits = before.gather(-1, skills.unsqueeze(-1)).squeeze(-1)      # (B, T) read at s_t
        mastery = torch.sigmoid(y)
        m0 = torch.sigmoid(prior[:, 0])                                   # (B, C)
        gains = state_gains(mastery, m0, start, keep_from)
        return GainAKT2Output(logits=logits, mastery=mastery, gains=gains, parts=None, start=m0)


def check_state(state: dict) -> None:
    check_finite(state)
