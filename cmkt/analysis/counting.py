"""Counting models: logistic regression on what a student has answered so far. They show where
a mastery estimate should land: PFA (per-skill successes and failures: not monotone, a wrong
answer lowers it) and monotone counting (successes only: the estimate can only grow, like
cumulative mastery). Fitted on one data set, scored on another, steps after each student's first."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from cmkt.data.dataset import KTDataset

# name -> (per-skill successes, per-skill failures, all-skill successes, all-skill failures, monotone)
COUNTING_MODELS = {
    "pfa": (True, True, False, False, False),
    "pfa_totals": (True, True, True, True, False),
    "monotone": (True, False, False, False, True),
    "monotone_totals": (True, False, True, False, True),
}
COUNTING_LABELS = {
    "pfa": "PFA (per-skill successes and failures; not monotone)",
    "pfa_totals": "PFA plus all-skill totals",
    "monotone": "monotone counting (skill + per-skill successes)",
    "monotone_totals": "monotone + all-skill successes",
}


def prior_counts(ds: KTDataset) -> dict:
    """Per step (all students stacked): the skill, the response, whether it is a student's
    first step, and the counts before the step: successes and failures on that skill and on
    all skills."""
    skills, resp, first, s_ok, s_bad, a_ok, a_bad = [], [], [], [], [], [], []
    for s, r in zip(ds.skills, ds.responses):
        n = len(s)
        if n == 0:
            continue
        onehot = np.zeros((n, ds.num_skills), dtype=np.int32)
        onehot[np.arange(n), s] = 1
        ok = np.cumsum(onehot * r[:, None], axis=0) - onehot * r[:, None]        # (T, C) before t
        tried = np.cumsum(onehot, axis=0) - onehot
        rows = np.arange(n)
        s_ok.append(ok[rows, s])
        s_bad.append(tried[rows, s] - ok[rows, s])
        tot_ok = np.cumsum(r) - r
        a_ok.append(tot_ok)
        a_bad.append(rows - tot_ok)
        skills.append(s)
        resp.append(r)
        f = np.zeros(n, dtype=bool)
        f[0] = True
        first.append(f)
    cat = (lambda x, dt=np.int64: np.concatenate(x).astype(dt) if x else np.zeros(0, dt))
    return {"skills": cat(skills), "responses": cat(resp), "first": cat(first, bool),
            "skill_ok": cat(s_ok), "skill_bad": cat(s_bad), "all_ok": cat(a_ok), "all_bad": cat(a_bad)}


def features(counts: dict, num_skills: int, name: str):
    """Sparse design matrix of a counting model: a per-skill intercept, per-skill slopes on
    log(1 + count), and global slopes on the all-skill log counts."""
    use_ok, use_bad, use_all_ok, use_all_bad, _ = COUNTING_MODELS[name]
    n = len(counts["skills"])
    rows = np.arange(n)
    s = counts["skills"]
    blocks = [sp.csr_matrix((np.ones(n), (rows, s)), shape=(n, num_skills))]
    for use, key in ((use_ok, "skill_ok"), (use_bad, "skill_bad")):
        if use:
            blocks.append(sp.csr_matrix((np.log1p(counts[key]), (rows, s)), shape=(n, num_skills)))
    dense = [np.log1p(counts[key]) for use, key in ((use_all_ok, "all_ok"), (use_all_bad, "all_bad")) if use]
    if dense:
        blocks.append(sp.csr_matrix(np.stack(dense, axis=1)))
    return sp.hstack(blocks).tocsr()


def fit_counting(train: KTDataset, name: str, num_skills: int | None = None) -> LogisticRegression:
    C = num_skills or train.num_skills
    c = prior_counts(train)
    X = features(c, C, name)
    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit(X, c["responses"])
    return model


def counting_aucs(train: KTDataset, test: KTDataset, names=tuple(COUNTING_MODELS)) -> dict:
    """Test AUC of each counting model (fitted on train), steps after each student's first."""
    C = max(train.num_skills, test.num_skills)
    c_test = prior_counts(test)
    later = ~c_test["first"]
    y = c_test["responses"][later]
    out = {}
    for name in names:
        model = fit_counting(train, name, C)
        p = model.predict_proba(features(c_test, C, name)[later])[:, 1]
        out[name] = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None
    return out
