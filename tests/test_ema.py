"""The moving average of the weights (TrainConfig.ema): what is validated, selected and saved,
updated after every step with the configured decay, and carried across a resume."""
import json

import pytest
import torch

from cmkt.runs.checkpoint import load_checkpoint
from cmkt.train.config import TrainConfig, build_configs
from cmkt.data.source import load_training_data
from cmkt.runs import create_run, execute_run
from cmkt.train.trainer import Trainer

TINY = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "20", "dropout": "0"}


def _trainer(epochs, ema="0.9", **extra):
    data = load_training_data("sim:students=60,skills=4", 0.2, 0)
    extra.setdefault("ema_epochs", "0")                 # the decay as given (no cap)
    mc, tc = build_configs(data.num_skills, "cumulative", "quick", dict(TINY, ema=ema, patience="99", **extra),
                           epochs=epochs, device="cpu", seed=2)
    return Trainer(mc, tc, data)


def test_the_average_follows_every_step_with_the_warmed_up_decay():
    """Update n (the first is a copy) uses decay min(0.9, (1 + n) / (10 + n)): early weights are
    forgotten fast, so a short run is not held back by its untrained start."""
    tr = _trainer(1, ema="0.9")
    name = "gain_head.weight"
    after_steps = []
    real_step = tr.opt.step

    def step(*a, **k):
        out = real_step(*a, **k)
        after_steps.append(dict(tr.model.named_parameters())[name].detach().clone())
        return out
    tr.opt.step = step
    tr.train_epoch(1)
    assert len(after_steps) > 2
    expected = after_steps[0]                       # the first update copies the weights
    for n, w in enumerate(after_steps[1:], start=1):
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * w
    assert min(0.9, (1 + 1) / (10 + 1)) < 0.2       # the second update weighs the new weights > 80%
    averaged = dict(tr.ema.module.named_parameters())[name]
    assert torch.allclose(averaged, expected, atol=1e-6)
    assert not torch.allclose(averaged, after_steps[-1], atol=1e-4)   # not just the last weights


def test_the_averaged_weights_are_validated_and_saved(tmp_path):
    run = create_run(tmp_path, data="sim:students=60,skills=4", preset="quick", epochs=2,
                     overrides=dict(TINY, ema="0.8", patience="99"), seed=1)
    seen = {}
    real_eval = Trainer.evaluate

    def spy(self, model, ds):
        seen.setdefault("is_average", []).append(model is self.ema.module)
        seen.setdefault("avg", []).append({k: v.clone() for k, v in self.ema.module.state_dict().items()})
        seen.setdefault("raw", []).append({k: v.clone() for k, v in self.model.state_dict().items()})
        return real_eval(self, model, ds)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "evaluate", spy)
        results = execute_run(run)
    assert seen["is_average"][:2] == [True, True]       # both epochs validate the average
    model, meta = load_checkpoint(run)
    best = meta["epoch"] - 1
    saved = model.state_dict()
    assert all(torch.equal(saved[k], seen["avg"][best][k]) for k in saved)   # best.safetensors: the average
    assert not all(torch.equal(saved[k], seen["raw"][best][k]) for k in saved)
    assert results["test"]["monotonicity_violation_rate"] == 0
    assert json.loads((run / "config.json").read_text())["train"]["ema"] == 0.8


def test_resume_carries_the_average():
    straight = _trainer(3)
    straight.fit()
    first = _trainer(1)
    first.fit()
    state = first.state_dict()
    assert state["ema"] is not None
    resumed = _trainer(3)
    resumed.load_state_dict(state)
    resumed.fit()
    a, b = straight.ema.state_dict(), resumed.ema.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert [r["val_auc"] for r in straight.history] == pytest.approx([r["val_auc"] for r in resumed.history], abs=1e-6)


def test_ema_off_validates_the_model_itself():
    tr = _trainer(1, ema="0")
    assert tr.ema is None and tr.eval_model is tr.model


@pytest.mark.parametrize("bad", ["1", "-0.1", "1.5"])
def test_ema_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="ema"):
        build_configs(5, "cumulative", "quick", {"ema": bad})


@pytest.mark.parametrize("mode", ["cumulative", "original"])
def test_the_presets_average_spans_at_most_four_epochs(mode):
    """The presets' ema=0.99 with ema_epochs=4: on the real data sets (tens to hundreds of steps
    per epoch) the decay stays 0.99; on a few hundred simulated students (a few steps per epoch)
    it is lowered to 1 - 1/(4 x steps), so after 20 epochs the average no longer holds the first,
    untrained weights (0.99 ** 80 = 0.45 of them)."""
    from cmkt.train.trainer import ema_decay
    data = load_training_data("sim:students=300,skills=4", 0.2, 0)
    mc, tc = build_configs(data.num_skills, mode, "quick", dict(TINY, max_len="100"), epochs=1, device="cpu")
    assert (tc.ema, tc.ema_epochs) == (0.99, 4)
    tr = Trainer(mc, tc, data)
    steps = len(tr.train_windows.plan(tc.batch_size, shuffle=True, max_tokens=tc.batch_tokens))
    assert 1 <= steps < 25 and tr.ema_decay == pytest.approx(1 - 1 / (4 * steps))
    assert ema_decay(tc, 181) == 0.99 and ema_decay(tc, 25) == pytest.approx(0.99)   # ASSIST2015, synthetic
    assert ema_decay(TrainConfig(ema=0.99), 4) == 0.99                                 # no cap asked for
    assert ema_decay(TrainConfig(ema=0), 4) == 0.0
    # what the trainer averages with: one step is 1 - decay of the way from the average to the weights
    tr.train_epoch(1)
    assert tr.ema.n_averaged.item() == steps
