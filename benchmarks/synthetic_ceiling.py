"""How close a model is to what Synthetic-5 allows: two reference predictors that know the
data's structure, fitted on train.csv and scored on test.csv beside trained runs.

    python benchmarks/synthetic_ceiling.py --data ../shared/data/synthetic [--runs RUN ...]

Synthetic-5 (the DKT paper's simulated students) has every student answer the same 50
exercises in the same order; each exercise belongs to one of 5 hidden concepts and the answer
follows item response theory with a guess floor of 0.25. So two predictors that no general
knowledge-tracing model can be are possible here:

- `position_lr`: one logistic regression per step t over the answers to steps < t (its L2
  strength chosen on a validation split of train.csv, then refitted on all of it);
- `concept_irt`: the exercises clustered into concepts (spectral clustering of the answers'
  correlations on train.csv), a 2PL model with the guess floor per concept fitted by marginal
  maximum likelihood (quadrature over a N(0, 1) ability), and each prediction the posterior
  predictive of the student's ability on that concept given the answers so far (Bayes' rule).

Every AUC is over the steps after each student's first, as cmkt's `auc` metric is. With
--runs, each trained run is scored on the same steps; `with concept_irt` is the AUC of the
equal-weight sum of the run's and concept_irt's logits (nothing fitted on test.csv): above both,
it shows that the two know different things, so the data allows more than either reaches.
Writes ceiling.json and ceiling.md under --out.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (puts the repository on sys.path)
from cmkt.data.dataset import KTDataset, train_valid_split  # noqa: E402
from cmkt.data.readers import load_folder  # noqa: E402
from cmkt.errors import CmktError, DataError  # noqa: E402

GRID = np.linspace(-4.0, 4.0, 81)                     # ability quadrature points
PRIOR = np.exp(-GRID ** 2 / 2) / np.exp(-GRID ** 2 / 2).sum()
LR_STRENGTHS = (0.01, 0.03, 0.1, 0.3, 1.0)


def answer_matrix(ds: KTDataset, path) -> tuple[np.ndarray, np.ndarray]:
    """(S, T) answers and the (T,) exercise order, which every student must share."""
    if len(ds) == 0:
        raise DataError(path, "no students")
    order = ds.skills[0]
    for i, s in enumerate(ds.skills):
        if len(s) != len(order) or not np.array_equal(s, order):
            raise DataError(path, f"student {ds.student_ids[i]} does not answer the same exercises in the "
                                  "same order as the first student: this benchmark needs a fixed sequence "
                                  "(Synthetic-5)")
    if len(set(order.tolist())) != len(order):
        raise DataError(path, "an exercise repeats within the sequence: this benchmark needs each exercise once")
    return np.stack(ds.responses).astype(np.int64), order


def auc_after_first(y: np.ndarray, p: np.ndarray, start: int = 1, stop: int | None = None) -> float:
    """AUC over the steps [start, stop) of (S, T) answers y and predictions p."""
    from sklearn.metrics import roc_auc_score
    sl = slice(start, stop)
    return float(roc_auc_score(y[:, sl].ravel(), p[:, sl].ravel()))


def fit_position_lr(train: np.ndarray, strength: float):
    """One logistic regression per step t >= 1 over the answers before t."""
    from sklearn.linear_model import LogisticRegression
    return [LogisticRegression(C=strength, max_iter=2000).fit(train[:, :t], train[:, t])
            for t in range(1, train.shape[1])]


def predict_position_lr(models, answers: np.ndarray) -> np.ndarray:
    """(S, T) P(correct); step 0 (no history, not scored) gets 0.5."""
    p = np.full(answers.shape, 0.5)
    for t, m in enumerate(models, start=1):
        p[:, t] = m.predict_proba(answers[:, :t])[:, 1]
    return p


def position_lr(train: np.ndarray, test: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """Choose the L2 strength on a validation split of train (by AUC), refit on all of train."""
    rng = np.random.default_rng(seed)
    valid = rng.random(len(train)) < 0.2
    scores = {c: auc_after_first(train[valid], predict_position_lr(fit_position_lr(train[~valid], c), train[valid]))
              for c in LR_STRENGTHS}
    best = max(scores, key=scores.get)
    return predict_position_lr(fit_position_lr(train, best), test), best


def find_concepts(train: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(T,) concept of each step: spectral clustering of the answers' positive correlations."""
    from sklearn.cluster import SpectralClustering
    corr = np.nan_to_num(np.corrcoef(train.T))
    affinity = np.clip(corr, 0.0, None)
    np.fill_diagonal(affinity, 1.0)
    return SpectralClustering(k, affinity="precomputed", random_state=seed).fit_predict(affinity)


def item_probs(slope: np.ndarray, difficulty: np.ndarray, guess: float) -> np.ndarray:
    """(I, G) P(correct) of items at each ability grid point."""
    return guess + (1 - guess) / (1 + np.exp(-(slope[:, None] * GRID[None, :] - difficulty[:, None])))


def fit_concept(answers: np.ndarray, guess: float) -> tuple[np.ndarray, np.ndarray]:
    """Marginal maximum likelihood of a 2PL-with-guess model for one concept's (S, I) answers."""
    from scipy.optimize import minimize
    n_items = answers.shape[1]

    def nll(theta):
        p = np.clip(item_probs(np.exp(theta[:n_items]), theta[n_items:], guess), 1e-9, 1 - 1e-9)
        ll = answers @ np.log(p) + (1 - answers) @ np.log(1 - p)       # (S, G)
        top = ll.max(1, keepdims=True)
        return -float((top[:, 0] + np.log(np.exp(ll - top) @ PRIOR)).sum())

    res = minimize(nll, np.zeros(2 * n_items), method="L-BFGS-B")
    return np.exp(res.x[:n_items]), res.x[n_items:]


def concept_irt(train: np.ndarray, test: np.ndarray, k: int, guess: float, seed: int):
    """(S, T) posterior predictive P(correct) on test, and the (T,) concepts found."""
    concepts = find_concepts(train, k, seed)
    p_items = np.zeros((train.shape[1], GRID.size))                         # (T, G)
    for c in range(k):
        steps = np.nonzero(concepts == c)[0]
        slope, difficulty = fit_concept(train[:, steps], guess)
        p_items[steps] = item_probs(slope, difficulty, guess)
    log_post = np.tile(np.log(PRIOR), (k, len(test), 1))                  # (K, S, G) per concept
    pred = np.zeros(test.shape)
    for t in range(test.shape[1]):
        c, pt = concepts[t], np.clip(p_items[t], 1e-9, 1 - 1e-9)
        w = np.exp(log_post[c] - log_post[c].max(1, keepdims=True))
        pred[:, t] = (w / w.sum(1, keepdims=True)) @ pt
        log_post[c] += np.where(test[:, t:t + 1] == 1, np.log(pt), np.log(1 - pt))
    return pred, concepts


def run_predictions(run, data, test: np.ndarray) -> np.ndarray:
    """(S, T) a trained run's test predictions, checked to be the same students and answers."""
    from cmkt.runs.evaluate import score_checkpoint
    traj = score_checkpoint(run, data, "test").traj
    lengths = np.diff(traj.offsets)
    if len(lengths) != len(test) or not (lengths == test.shape[1]).all() \
            or not np.array_equal(traj.responses.reshape(test.shape), test):
        raise DataError(run, "scored different test students or answers than the data given")
    return traj.probs.reshape(test.shape).astype(np.float64)


def logit(p: np.ndarray) -> np.ndarray:
    from scipy.special import logit as _logit
    return _logit(np.clip(p, 1e-6, 1 - 1e-6))


def thirds(steps: int) -> list[tuple[int, int]]:
    """The scored steps 1..steps-1 (0-based) in three ranges: early, middle, late."""
    edges = np.linspace(1, steps, 4).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def row(name: str, test: np.ndarray, p: np.ndarray, ref: np.ndarray | None = None) -> dict:
    """AUC over all scored steps, per third of them, and (with ref) of the two's logit sum."""
    out = {"predictor": name, "auc": auc_after_first(test, p)}
    for lo, hi in thirds(test.shape[1]):
        out[f"auc_steps_{lo + 1}_{hi}"] = auc_after_first(test, p, lo, hi)      # 1-based step numbers
    out["with_concept_irt"] = None if ref is None else auc_after_first(test, logit(p) + logit(ref))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--data", default=str(_common.SHARED_DATA / "synthetic"),
                    help="a folder with train.csv and test.csv of fixed-order students (default: Synthetic-5)")
    ap.add_argument("--runs", nargs="*", default=[], help="trained run folders (or checkpoints) to compare")
    ap.add_argument("--concepts", type=int, default=5, help="hidden concepts to look for (Synthetic-5: 5)")
    ap.add_argument("--guess", type=float, default=0.25, help="the guess floor of the IRT model (Synthetic-5: 0.25)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(_common.DEFAULT_OUT / "ceiling"))
    a = ap.parse_args(argv)
    if not 0 <= a.guess < 1:
        ap.error("--guess must be in [0, 1)")
    try:
        parts = load_folder(a.data)
        if "train" not in parts or "test" not in parts:
            raise DataError(a.data, "needs both train.csv and test.csv")
        train, order = answer_matrix(parts["train"], Path(a.data) / "train.csv")
        test, test_order = answer_matrix(parts["test"], Path(a.data) / "test.csv")
        if not np.array_equal(order, test_order):
            raise DataError(a.data, "train.csv and test.csv do not share one exercise sequence")
        if not 2 <= a.concepts <= train.shape[1]:
            raise DataError(a.data, f"--concepts must be between 2 and the {train.shape[1]} exercises")
        info = _common.machine_info()
        t0 = time.perf_counter()
        lr_pred, strength = position_lr(train, test, a.seed)
        irt_pred, concepts = concept_irt(train, test, a.concepts, a.guess, a.seed)
        rows = [row(f"position_lr (C={strength})", test, lr_pred, irt_pred),
                row("concept_irt", test, irt_pred)]
        for run in a.runs:
            rows.append(row(str(run), test, run_predictions(run, a.data, test), irt_pred))
    except CmktError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:                    # e.g. a step every training student got right
        print(f"error: {a.data}: cannot fit the reference predictors: {e}", file=sys.stderr)
        return 2
    info["seconds"] = round(time.perf_counter() - t0, 1)
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    keys = [k for k in rows[0] if k.startswith("auc_steps")]
    header = ["predictor", "test AUC"] + ["steps " + "–".join(k.split("_")[2:]) for k in keys] + ["with concept_irt"]
    table = _common.md_table(header, [[r["predictor"], _common.fmt(r["auc"])] + [_common.fmt(r[k]) for k in keys]
                                      + [_common.fmt(r["with_concept_irt"])]
                                      for r in rows])
    sizes = np.bincount(concepts, minlength=a.concepts).tolist()
    text = (f"{table}\n\nConcepts found (exercises per concept): {sizes}. "
            f"Measured with `{_common.command_line()}`; {_common.machine_line(info)}\n")
    out = Path(a.out)
    _common.write_json(out / "ceiling.json", {"rows": rows, "concepts": concepts.tolist(), "machine": info})
    _common.write_text(out / "ceiling.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
