"""The pairwise stack (ModelConfig.stack = "pairwise"): what the module computes is what was fitted,
the parts still sum to the logit, it never reads the answer it predicts, mastery is untouched, and
training fits it after the last epoch and saves it with the run."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from cmkt.runs.checkpoint import load_checkpoint
from cmkt.train.config import build_configs
from cmkt.data.source import load_training_data
from cmkt.analysis.metrics import compute_metrics
from cmkt.model import GainAKT2, ModelConfig
from cmkt.train.presets import defaults_for
from cmkt.runs import create_run, execute_run
from cmkt.analysis.scoring import score
from cmkt.train.stacking import STACK_BLENDS, design, fit_stack
from test_ensemble import SMALL, TINY
from test_model import perturb_weights, random_dataset

C = 5


def stacked_model(members=1, blend=0.4, seed=0, **kw):
    torch.manual_seed(seed)
    model = GainAKT2(ModelConfig(num_skills=C, max_len=12, members=members, stack="pairwise", **{**SMALL, **kw}))
    perturb_weights(model, seed, 1.0)
    g = torch.Generator().manual_seed(seed)
    model.stack.weight.copy_(torch.randn(C, 2 * C, generator=g))
    model.stack.bias.copy_(torch.randn(C, generator=g))
    model.stack.blend.fill_(blend)
    return model.eval()


def test_the_module_computes_the_fitted_design_over_chained_windows():
    """The torch module reads the same counts as the design matrix the regression is fitted on,
    also for students longer than a window (max_len 12: later windows re-read their context)."""
    model = stacked_model(blend=0.5)
    ds = random_dataset(1, 8, C, max_len=40)
    X, y, later = design(ds, model.cfg.max_len, C)
    coef = np.concatenate([model.stack.bias.numpy(), model.stack.weight.numpy().ravel()])
    z_design = X @ coef                                                     # (N,) b[s_t] + history
    net = dataclasses.replace(model.cfg, stack="none")
    alone = GainAKT2(net).eval()
    alone.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("stack.")})
    z_stacked = score(model, ds).parts.sum(1).astype(np.float64)             # (N,) the logits
    z_alone = score(alone, ds).parts.sum(1).astype(np.float64)
    np.testing.assert_allclose(z_stacked, 0.5 * z_alone + 0.5 * z_design, atol=1e-4)
    assert (np.diff(ds.lengths) != 0).any() and ds.lengths.max() > 12
    assert y.tolist() == np.concatenate(ds.responses).tolist() and (~later).sum() == (ds.lengths > 0).sum()


@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("bound", [None, 0.7])
def test_parts_sum_to_the_logit_and_mastery_is_the_networks(members, bound):
    model = stacked_model(members=members, momentary_bound=bound)
    s, r = torch.randint(0, C, (4, 12)), torch.randint(0, 2, (4, 12))
    out = model(s, r)
    assert torch.allclose(out.parts.sum(-1), out.logits, atol=1e-5)
    if bound is not None:
        assert out.parts[..., 2].abs().max() <= bound + 1e-6
    model.stack.blend.zero_()                                    # unfitted: the network alone
    plain = model(s, r)
    assert torch.equal(plain.mastery, out.mastery) and torch.equal(plain.gains, out.gains)
    assert not torch.allclose(plain.logits, out.logits)
    if members == 1:
        assert torch.equal(plain.logits, model.network(s, r).logits)


def test_the_stack_never_reads_the_answer_it_predicts():
    model = stacked_model(blend=0.6)
    s, r = torch.randint(0, C, (2, 12)), torch.randint(0, 2, (2, 12))
    base = model(s, r).logits
    for t in range(12):
        flipped = r.clone()
        flipped[:, t] = 1 - flipped[:, t]
        out = model(s, flipped).logits
        assert torch.allclose(out[:, :t + 1], base[:, :t + 1], atol=1e-6), t
        if t < 11:
            assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])


def test_fit_chooses_the_blend_on_validation_and_scoring_reproduces_it():
    data = load_training_data("sim:students=120,skills=5", seed=0)
    model = stacked_model(blend=0.0)
    fit = fit_stack(model, data.train, data.valid)
    assert fit.blend in STACK_BLENDS and fit.strength > 0
    assert fit.valid_auc >= max(fit.valid_auc_network, 0) - 1e-9
    assert compute_metrics(score(model, data.valid))["auc"] == pytest.approx(fit.valid_auc, abs=1e-4)
    # a random network is worse than a regression on the counts: the blend leans on the stack
    assert fit.blend > 0 and float(model.stack.weight.abs().sum()) > 0


def test_training_fits_the_stack_last_and_the_run_keeps_it(tmp_path):
    run = create_run(tmp_path, data="sim:students=80,skills=4", mode="cumulative", preset="quick", epochs=2,
                     seed=0, overrides=dict(TINY, predictor="mastery", base="prior", stack="pairwise"))
    execute_run(run)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("phase", "main") for r in lines][-1] == "stack" and len(lines) == 3
    last = lines[-1]
    assert last["stack_blend"] in STACK_BLENDS and last["monotonicity_violation_rate"] == 0
    model, meta = load_checkpoint(run)
    assert model.cfg.stack == "pairwise" and float(model.stack.blend) == pytest.approx(last["stack_blend"])
    ds = random_dataset(3, 5, 4, max_len=45)
    a, b = score(model, ds), score(load_checkpoint(run)[0], ds)
    np.testing.assert_array_equal(a.probs, b.probs)
    np.testing.assert_allclose(1 / (1 + np.exp(-a.parts.sum(1).astype(np.float64))), a.probs, atol=1e-5)


def test_with_bound_zero_nothing_is_fitted(tmp_path):
    """The faithful end stays faithful: the stack's history sum is momentary, so it is not fitted."""
    run = create_run(tmp_path, data="sim:students=60,skills=4", mode="cumulative", preset="quick", epochs=1,
                     seed=0, overrides=dict(TINY, predictor="mastery", base="prior", stack="pairwise",
                                        momentary_bound="0"))
    execute_run(run)
    assert "stack" not in (run / "metrics.jsonl").read_text()
    assert float(load_checkpoint(run)[0].stack.blend) == 0


def test_the_accuracy_presets_stack_the_cumulative_ensemble():
    for preset in ("standard", "intensive"):
        assert defaults_for(preset, "cumulative")["stack"] == "pairwise"
        mc, _ = build_configs(10, "cumulative", preset)
        assert mc.stack == "pairwise"
    assert build_configs(10, "cumulative", "quick")[0].stack == "none"
    assert build_configs(10, "original", "standard")[0].stack == "none"
    with pytest.raises(ValueError, match="stack"):
        ModelConfig(num_skills=4, stack="lasso")


def test_a_validation_split_of_one_answer_leaves_the_network_alone():
    data = load_training_data("sim:students=40,skills=5", seed=0)
    model = stacked_model(blend=0.0, seed=1)
    model.stack.weight.zero_()
    data.valid.responses = [np.ones_like(r) for r in data.valid.responses]   # all right: no AUC
    fit = fit_stack(model, data.train, data.valid)
    assert fit.blend == 0 and fit.strength is None and float(model.stack.blend) == 0
    assert float(model.stack.weight.abs().sum()) == 0
