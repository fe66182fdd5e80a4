"""BKT (Corbett & Anderson 1995): per skill a two-state hidden Markov model with
prior P(L_0), learn P(T), guess P(G), slip P(S) and, optionally, forget P(F).

Knowledge state m_t[k] = P(learned) of skill k after step t: when s_t = k, the posterior given
r_t followed by the learning transition, m_t = post + (1 - post) * learn - post * forget
(filtering: causal); skills not practised keep their state, which starts at the prior.
Prediction for step t: P(r_t = 1) = m_{t-1}[s_t] (1 - slip) + (1 - m_{t-1}[s_t]) guess.

Fitted on the exact likelihood by EM (Baum-Welch with scaled forward-backward), vectorised over
every (student, skill) sequence at once: the only Python loop is over time steps."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from cmkt.model.config import _check_number
from cmkt.model.gainakt2 import GainAKT2Output
from cmkt.baselines.common import BaselineConfig, check_probabilities, state_gains

PARAMS = ("prior", "learn", "guess", "slip", "forget")
INIT = {"prior": 0.5, "learn": 0.1, "guess": 0.2, "slip": 0.1, "forget": 0.0}
EPS = 1e-6


@dataclass
class BKTConfig(BaselineConfig):
    num_skills: int
    em_iters: int = 200        # at most this many EM iterations
    tol: float = 1e-6          # stop when the mean log-likelihood per step improves by less
    forgets: bool = False      # also fit a forget probability (else it is 0)
    max_guess: float = 0.5     # guess and slip are kept at or below these (no label switching)
    max_slip: float = 0.5
    max_len: int = 200         # window length; windows chain exactly (the state carries over)
    kind = "bkt"

    def __post_init__(self):
        self._check_common()
        _check_number("em_iters", self.em_iters, lo=1, hi=1_000_000, integer=True)
        _check_number("tol", self.tol, lo=0)
        _check_number("max_guess", self.max_guess, lo=0, hi=1, lo_open=True)
        _check_number("max_slip", self.max_slip, lo=0, hi=1, lo_open=True)
        if not isinstance(self.forgets, bool):
            raise ValueError(f"forgets must be true or false, not {self.forgets!r}")


class BKT(nn.Module):
    def __init__(self, cfg: BKTConfig):
        super().__init__()
        self.cfg = cfg
        for name in PARAMS:
            self.register_parameter(name, nn.Parameter(torch.full((cfg.num_skills,), INIT[name]),
                                                       requires_grad=False))

    def params(self) -> dict:
        return {name: getattr(self, name) for name in PARAMS}

    def set_params(self, values: dict) -> None:
        with torch.no_grad():
            for name in PARAMS:
                getattr(self, name).copy_(torch.as_tensor(np.asarray(values[name]), dtype=torch.float32))

    def prior_mastery(self) -> torch.Tensor:
        return self.prior

    def forward(self, skills: torch.Tensor, responses: torch.Tensor,
                start: torch.Tensor | None = None, keep_from: torch.Tensor | None = None) -> GainAKT2Output:
        """skills, responses: (B, T). A window continuing a student (keep_from > 0) takes `start`,
        the state its previous window ended with, as the state before step keep_from: exact."""
        B, T = skills.shape
        C = self.cfg.num_skills
        m0 = self.prior.expand(B, C)
        state = m0.clone()
        reset = None
        if start is not None and keep_from is not None:
            reset = keep_from > 0
        rows = torch.arange(B, device=skills.device)
        preds, states = [], []
        for t in range(T):
            if reset is not None:
                at = reset & (keep_from == t)
                if bool(at.any()):
                    state = torch.where(at[:, None], start.to(state.dtype), state)
            s, r = skills[:, t], responses[:, t]
            a = state[rows, s]
            guess, slip, learn, forget = self.guess[s], self.slip[s], self.learn[s], self.forget[s]
            right, wrong = a * (1 - slip), a * slip             # P(learned and the answer)
            p = right + (1 - a) * guess
            q = wrong + (1 - a) * (1 - guess)                   # P(wrong), not 1 - p (no cancellation)
            post = torch.where(r == 1, right / p.clamp_min(1e-30), wrong / q.clamp_min(1e-30)).clamp(0.0, 1.0)
            new = (post * (1 - forget) + (1 - post) * learn).clamp(0.0, 1.0)
            state = state.clone()
            state[rows, s] = new
            preds.append(p)
            states.append(state)
        p = torch.stack(preds, dim=1).clamp(EPS, 1 - EPS)              # (B, T)
        mastery = torch.stack(states, dim=1)                           # (B, T, C)
        logits = torch.log(p) - torch.log1p(-p)
        return GainAKT2Output(logits=logits, mastery=mastery, gains=state_gains(mastery, m0, start, keep_from),
                              parts=None, start=m0)


# ---- fitting: EM over every (student, skill) sequence at once ---------------------------

class _Sequences:
    """Every (student, skill) response sequence, stored time-major: sequences sorted by length
    (longest first), so at step t the active ones are the first n[t]; step t of them lives at
    obs[begin[t]:begin[t] + n[t]]."""

    def __init__(self, ds, num_skills: int):
        lengths = ds.lengths
        nonempty = [i for i, n in enumerate(lengths) if n]
        s_all = np.concatenate([ds.skills[i] for i in nonempty]).astype(np.int64) if nonempty else np.zeros(0, np.int64)
        r_all = np.concatenate([ds.responses[i] for i in nonempty]).astype(np.int64) if nonempty else np.zeros(0, np.int64)
        stu = np.repeat(np.arange(len(lengths)), lengths)
        key = stu * num_skills + s_all
        order = np.argsort(key, kind="stable")                      # time order kept within a pair
        uniq, first, counts = np.unique(key[order], return_index=True, return_counts=True)
        P, N = len(uniq), len(key)
        pos = np.arange(N) - np.repeat(first, counts)
        by_len = np.argsort(-counts, kind="stable")
        rank = np.empty(P, np.int64)
        rank[by_len] = np.arange(P)
        L = int(counts.max()) if P else 0
        n = P - np.cumsum(np.bincount(counts, minlength=L + 1))[:L] if P else np.zeros(0, np.int64)
        begin = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64) if L else np.zeros(0, np.int64)
        flat = begin[pos] + np.repeat(rank, counts)
        self.obs = np.empty(N, np.float64)
        self.obs[flat] = r_all[order]
        self.skill_of = (uniq % num_skills)[by_len]                  # (P,) by rank
        self.skill = np.empty(N, np.int64)
        self.skill[flat] = np.repeat(uniq % num_skills, counts)
        self.first = np.zeros(N, bool)
        if L:
            self.first[:n[0]] = True                                 # step 0 of every sequence
        self.last = np.zeros(N, bool)
        self.last[flat[pos == np.repeat(counts - 1, counts)]] = True
        self.n, self.begin, self.L, self.N, self.P = n.astype(np.int64), begin, L, N, P


def _e_step(sq: _Sequences, p: dict):
    """Scaled forward-backward. Returns (log-likelihood, gamma1, xi00, xi01, xi10, xi11) with
    gamma1 = P(L_t = 1 | all of the sequence) per step and xi the transition posteriors t -> t+1."""
    sk = sq.skill_of
    learn, forget, guess, slip = p["learn"][sk], p["forget"][sk], p["guess"][sk], p["slip"][sk]
    a = p["prior"][sk].copy()
    F, Cc = np.empty(sq.N), np.empty(sq.N)
    for t in range(sq.L):
        n, b = sq.n[t], sq.begin[t]
        o, a = sq.obs[b:b + n], a[:n]
        e1 = np.where(o > 0, 1 - slip[:n], slip[:n])
        e0 = np.where(o > 0, guess[:n], 1 - guess[:n])
        c = a * e1 + (1 - a) * e0
        f = a * e1 / c
        F[b:b + n], Cc[b:b + n] = f, c
        a = f * (1 - forget[:n]) + (1 - f) * learn[:n]
    gamma1 = np.empty(sq.N)
    xi = [np.zeros(sq.N) for _ in range(4)]                # 00, 01, 10, 11 (zero at a last step)
    b0 = b1 = None
    for t in range(sq.L - 1, -1, -1):
        n, b = sq.n[t], sq.begin[t]
        nb0, nb1 = np.ones(n), np.ones(n)
        if t + 1 < sq.L and sq.n[t + 1]:
            m, b2 = sq.n[t + 1], sq.begin[t + 1]
            o2, c2 = sq.obs[b2:b2 + m], Cc[b2:b2 + m]
            B1 = np.where(o2 > 0, 1 - slip[:m], slip[:m]) * b1 / c2
            B0 = np.where(o2 > 0, guess[:m], 1 - guess[:m]) * b0 / c2
            nb0[:m] = (1 - learn[:m]) * B0 + learn[:m] * B1
            nb1[:m] = forget[:m] * B0 + (1 - forget[:m]) * B1
            f = F[b:b + m]
            xi[0][b:b + m] = (1 - f) * (1 - learn[:m]) * B0
            xi[1][b:b + m] = (1 - f) * learn[:m] * B1
            xi[2][b:b + m] = f * forget[:m] * B0
            xi[3][b:b + m] = f * (1 - forget[:m]) * B1
        b0, b1 = nb0, nb1
        f = F[b:b + n]
        g1 = f * b1
        gamma1[b:b + n] = g1 / (g1 + (1 - f) * b0)
    return float(np.log(Cc).sum()), gamma1, xi


def _m_step(sq: _Sequences, gamma1, xi, old: dict, cfg: BKTConfig) -> dict:
    C = cfg.num_skills
    sums = (lambda w, sel=None: np.bincount(sq.skill if sel is None else sq.skill[sel],
                                            weights=w if sel is None else w[sel], minlength=C))
    new = {k: v.copy() for k, v in old.items()}

    def put(name, num, den, hi=1 - EPS):
        ok = den > 1e-12
        new[name][ok] = np.clip(num[ok] / den[ok], EPS, hi)

    put("prior", sums(gamma1, sq.first), sums(np.ones(sq.N), sq.first))
    nonlast = ~sq.last
    put("learn", sums(xi[1], nonlast), sums(xi[0] + xi[1], nonlast))
    if cfg.forgets:
        put("forget", sums(xi[2], nonlast), sums(xi[2] + xi[3], nonlast))
    g0 = 1 - gamma1
    put("guess", sums(g0 * sq.obs), sums(g0), cfg.max_guess)
    put("slip", sums(gamma1 * (1 - sq.obs)), sums(gamma1), cfg.max_slip)
    return new


def fit_bkt(model: BKT, train, should_stop=None, progress=None) -> dict:
    """EM on `train` until the mean log-likelihood per step improves by less than cfg.tol.
    should_stop() is polled between iterations; progress(i, n, nll) reports each."""
    cfg = model.cfg
    t0 = time.perf_counter()
    sq = _Sequences(train, cfg.num_skills)
    if sq.N == 0:
        raise ValueError("BKT needs at least one answer in the training data")
    p = {k: v.detach().cpu().double().numpy().copy() for k, v in model.params().items()}
    if not cfg.forgets:
        p["forget"][:] = 0.0
    prev, it = -np.inf, 0
    for it in range(1, cfg.em_iters + 1):
        if should_stop is not None and should_stop():
            from cmkt.errors import Cancelled
            raise Cancelled()
        ll, gamma1, xi = _e_step(sq, p)
        if progress is not None:
            progress(it, cfg.em_iters, -ll / sq.N)
        if ll / sq.N - prev < cfg.tol:
            break
        prev = ll / sq.N
        p = _m_step(sq, gamma1, xi, p, cfg)
    ll, _, _ = _e_step(sq, p)
    model.set_params(p)
    return {"train_total": -ll / sq.N, "train_bce": -ll / sq.N, "fit_iterations": it,
            "fit_seconds": time.perf_counter() - t0}


def check_state(state: dict) -> None:
    check_probabilities(state, PARAMS)
