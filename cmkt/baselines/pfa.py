"""PFA (Pavlik, Cen & Koedinger 2009): a logistic regression on each skill's intercept and the
log counts of the student's earlier successes and failures on it (cmkt.analysis.counting's "pfa"
features, fitted with scikit-learn). Knowledge state m_t[k]: the predicted probability of a
right answer on skill k from the counts after step t; the prediction for step t is m_{t-1}[s_t]."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cmkt.model.config import _check_number
from cmkt.model.gainakt2 import GainAKT2Output
from cmkt.baselines.common import BaselineConfig, check_finite, state_gains

WHOLE = 1_000_000   # PFA reads each student whole (its state is counts, not a probability)


@dataclass
class PFAConfig(BaselineConfig):
    num_skills: int
    reg: float = 1.0           # inverse L2 strength (scikit-learn's C)
    max_iter: int = 1000
    kind = "pfa"

    def __post_init__(self):
        self._check_common()
        _check_number("reg", self.reg, lo=0, lo_open=True)
        _check_number("max_iter", self.max_iter, lo=1, hi=10_000_000, integer=True)

    @property
    def max_len(self) -> int:
        return WHOLE


class PFA(nn.Module):
    def __init__(self, cfg: PFAConfig):
        super().__init__()
        self.cfg = cfg
        C = cfg.num_skills
        z = (lambda *shape: nn.Parameter(torch.zeros(*shape), requires_grad=False))
        self.bias, self.skill, self.w_ok, self.w_bad = z(()), z(C), z(C), z(C)

    def prior_mastery(self) -> torch.Tensor:
        return torch.sigmoid(self.bias + self.skill)

    def forward(self, skills: torch.Tensor, responses: torch.Tensor,
                start: torch.Tensor | None = None, keep_from: torch.Tensor | None = None) -> GainAKT2Output:
        B, T = skills.shape
        C = self.cfg.num_skills
        onehot = F.one_hot(skills, C).to(self.skill.dtype)                 # (B, T, C)
        ok = torch.cumsum(onehot * responses.unsqueeze(-1), dim=1)          # counts after step t
        bad = torch.cumsum(onehot, dim=1) - ok
        z = self.bias + self.skill + self.w_ok * torch.log1p(ok) + self.w_bad * torch.log1p(bad)
        z0 = (self.bias + self.skill).expand(B, 1, C)
        before = torch.cat([z0, z[:, :-1]], dim=1)
        logits = before.gather(-1, skills.unsqueeze(-1)).squeeze(-1)
        mastery = torch.sigmoid(z)
        m0 = torch.sigmoid(z0[:, 0])
        return GainAKT2Output(logits=logits, mastery=mastery, gains=state_gains(mastery, m0, start, keep_from),
                              parts=None, start=m0)


def fit_pfa(model: PFA, train, should_stop=None, progress=None) -> dict:
    """Fit the logistic regression on every step of `train`; returns the training record."""
    from cmkt.analysis.counting import features, prior_counts
    from sklearn.linear_model import LogisticRegression
    t0 = time.perf_counter()
    C = model.cfg.num_skills
    c = prior_counts(train)
    X = features(c, C, "pfa")
    y = c["responses"]
    if len(np.unique(y)) < 2:
        raise ValueError("PFA needs both right and wrong answers in the training data")
    lr = LogisticRegression(C=model.cfg.reg, max_iter=model.cfg.max_iter)
    lr.fit(X, y)
    w = torch.as_tensor(lr.coef_[0], dtype=torch.float32)
    with torch.no_grad():
        model.bias.fill_(float(lr.intercept_[0]))
        model.skill.copy_(w[:C])
        model.w_ok.copy_(w[C:2 * C])
        model.w_bad.copy_(w[2 * C:3 * C])
    p = np.clip(lr.predict_proba(X)[:, 1], 1e-7, 1 - 1e-7)
    nll = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return {"train_total": nll, "train_bce": nll, "fit_iterations": int(np.max(lr.n_iter_)),
            "fit_seconds": time.perf_counter() - t0}


def check_state(state: dict) -> None:
    check_finite(state)
