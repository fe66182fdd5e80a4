"""Fit a trained model's pairwise stack (ModelConfig.stack = "pairwise"; cmkt/model/pairwise.py).

After the network has trained, a logistic regression on the answers so far is fitted to the
training students (its L2 strength chosen on the validation students), then its blend weight w
with the network: the w in STACK_BLENDS whose blended prediction has the best validation AUC
(w = 0, the network alone, when nothing beats it). Everything is read through the same chained
windows the network is trained and scored with, so the torch module reproduces the fit exactly."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from cmkt.data.batching import chained_windows
from cmkt.data.dataset import KTDataset
from cmkt.model.pairwise import window_features
from cmkt.analysis.scoring import score

STACK_STRENGTHS = (0.01, 0.03, 0.1, 0.3, 1.0)           # sklearn's C (inverse L2 strength)
STACK_BLENDS = tuple(round(0.05 * i, 2) for i in range(19))  # 0, 0.05, ..., 0.9


@dataclass
class StackFit:
    strength: float | None   # the chosen C (None: nothing was fitted)
    blend: float             # the chosen w
    valid_auc_pairwise: float | None
    valid_auc_network: float | None
    valid_auc: float | None  # the blend's


def design(ds: KTDataset, max_len: int, num_skills: int):
    """Every step of every student once (student order, as cmkt.analysis.scoring stacks them), read from
    its chained window. Returns X (N, C + 2C*C) sparse, y (N,), later (N,) bool (not a student's
    first step)."""
    cw = chained_windows(ds, max_len)
    offsets = np.concatenate([[0], np.cumsum(ds.lengths)]).astype(np.int64)
    rows, cols, vals = [], [], []
    for w in range(len(cw)):
        r, lo, keep, end = cw.windows.row[w], cw.windows.start[w], cw.keep_from[w], cw.windows.end[w]
        i, c, v = window_features(ds.skills[r][lo:end], ds.responses[r][lo:end], num_skills)
        kept = i >= keep - lo                                        # the window's own steps
        rows.append(offsets[r] + lo + i[kept])
        cols.append(c[kept])
        vals.append(v[kept])
    N = int(offsets[-1])
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    X = sp.csr_matrix((cat(vals, np.float64), (cat(rows, np.int64), cat(cols, np.int64))),
                      shape=(N, num_skills + 2 * num_skills * num_skills))
    y = cat([np.asarray(r) for r in ds.responses], np.int64)
    later = np.ones(N, bool)
    later[offsets[:-1][ds.lengths > 0]] = False
    return X, y, later


def _auc(y, z) -> float:
    return float(roc_auc_score(y, z)) if len(np.unique(y)) == 2 else float("nan")


def _blender(traj, later, intercept, history, bound):
    """w -> the blended logits of the steps `later`, exactly as the model makes them
    (cmkt.model.gainakt2.stacked): with parts, the history joins the momentary part under the
    bound; without (mlp), the logits are blended whole."""
    if traj.parts is None:
        z = logit(np.clip(traj.probs.astype(np.float64), 1e-7, 1 - 1e-7))[later]
        return lambda w: (1 - w) * z + w * (intercept + history)
    parts = traj.parts.astype(np.float64)[later]                             # (n, 3)

    def blended(w):
        momentary = (1 - w) * parts[:, 2] + w * history
        if bound is not None and w > 0:
            momentary = bound * np.tanh(momentary / bound) if bound > 0 else np.zeros_like(momentary)
        return (1 - w) * (parts[:, 0] + parts[:, 1]) + w * intercept + momentary
    return blended


def fit_stack(model, train: KTDataset, valid: KTDataset, device="cpu", batch_size: int = 128) -> StackFit:
    """Fit model.stack in place (weights, intercepts, blend weight) and say what was chosen."""
    stack, cfg = model.stack, model.cfg
    C = cfg.num_skills
    X, y, _ = design(train, cfg.max_len, C)
    Xv, yv, later = design(valid, cfg.max_len, C)
    with torch.no_grad():
        stack.blend.zero_()                                   # the network alone
        traj = score(model, valid, device, batch_size)
    if len(np.unique(y)) < 2 or len(np.unique(yv[later])) < 2:
        # nothing to fit, or nothing to choose a blend on: the network alone
        return StackFit(None, 0.0, None, None, None)
    best = None
    for strength in STACK_STRENGTHS:
        reg = LogisticRegression(C=strength, max_iter=2000).fit(X, y)
        auc = _auc(yv[later], reg.decision_function(Xv[later]))
        if best is None or auc > best[0]:
            best = (auc, strength, reg)
    auc_pair, strength, reg = best
    Xv = Xv[later]
    intercept = Xv[:, :C] @ reg.coef_[0][:C] + reg.intercept_[0]              # b[s_t]
    history = reg.decision_function(Xv) - intercept
    blend_logits = _blender(traj, later, intercept, history, cfg.momentary_bound)
    blends = [(_auc(yv[later], blend_logits(w)), -w) for w in STACK_BLENDS]   # blends[0]: w = 0, the network
    auc_blend, neg_w = max(blends)                            # ties: the smaller weight
    coef = reg.coef_[0]
    with torch.no_grad():
        stack.bias.copy_(torch.as_tensor(coef[:C] + reg.intercept_[0], dtype=torch.float32))
        stack.weight.copy_(torch.as_tensor(coef[C:].reshape(C, 2 * C), dtype=torch.float32))
        stack.blend.fill_(-neg_w)
    return StackFit(strength, -neg_w, auc_pair, blends[0][0], auc_blend)
