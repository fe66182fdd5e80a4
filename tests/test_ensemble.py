"""An ensemble (ModelConfig.members > 1): its outputs are its members' means, each member learns
from its own losses, the mastery phase trains every member's mastery, and it saves, loads and
scores like one model. (Causality, the guarantees and long students trained as scored run for it
in test_predictor.py, as the variant "ensemble-of-3".)"""
import numpy as np
import pytest
import torch

from cmkt.train import distributed
from cmkt.runs.checkpoint import load_checkpoint
from cmkt.train.config import build_configs
from cmkt.data.source import load_training_data
from cmkt.model import GainAKT2, ModelConfig
from cmkt.model.losses import compute_losses
from cmkt.runs import create_run, execute_run
from cmkt.analysis.scoring import score
from cmkt.train.trainer import Trainer
from test_model import perturb_weights, random_dataset

SMALL = dict(d_model=16, n_heads=2, n_blocks=1, d_ff=16, dropout=0.0, predictor="mastery", base="prior",
             accumulation="gap", momentary_bound=None, recurrent=8, recurrent_head="skill",
             gain_encoder="recurrent", gain_hidden=8)
TINY = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "20", "dropout": "0", "gain_hidden": "8",
        "recurrent": "8", "gain_encoder": "recurrent"}   # the accuracy presets' gain LSTM, at the quick size


def ensemble(members=3, seed=0, **kw):
    torch.manual_seed(seed)
    model = GainAKT2(ModelConfig(num_skills=5, max_len=20, members=members, **{**SMALL, **kw}))
    perturb_weights(model, seed, 1.0)
    return model.eval()


def test_outputs_are_the_means_of_the_members_run_alone():
    model = ensemble()
    assert len(model.members) == 3 and all(m.cfg.members == 1 for m in model.members)
    s, r = torch.randint(0, 5, (4, 20)), torch.randint(0, 2, (4, 20))
    out = model(s, r)
    alone = [m(s, r) for m in model.members]
    for name in ("logits", "mastery", "gains", "parts", "start"):
        want = torch.stack([getattr(o, name) for o in alone]).mean(0)
        assert torch.allclose(getattr(out, name), want, atol=1e-6), name
    assert not torch.allclose(alone[0].logits, alone[1].logits)       # members start from their own weights
    assert torch.allclose(out.parts.sum(-1), out.logits, atol=1e-6)
    np.testing.assert_allclose(model.prior_mastery().detach().numpy(),
                               torch.stack([m.prior_mastery() for m in model.members]).mean(0).detach().numpy())
    # a continuing window: every member starts from the same (the ensemble's) mastery
    start, keep = torch.rand(4, 5) * 0.5, torch.tensor([0, 3, 5, 19])
    out = model(s, r, start=start, keep_from=keep)
    for m, o in zip(model.members, out.members):
        assert torch.allclose(o.logits, m(s, r, start=start, keep_from=keep).logits, atol=1e-6)
    assert torch.allclose(out.start[1:], start[1:])


def test_each_member_learns_from_its_own_losses():
    model = ensemble(members=2).train()
    s, r = torch.randint(0, 5, (3, 20)), torch.randint(0, 2, (3, 20))
    mask = torch.ones(3, 20, dtype=torch.bool)
    args = (s, r, mask, (0.1, 0.1, 1.2, 0.3, 0.3, 0.1), 0.1, 1.5)
    out = model(s, r)
    total = compute_losses(out, *args)
    per = [compute_losses(o, *args) for o in out.members]
    for k in total:
        assert torch.allclose(total[k], (per[0][k] + per[1][k]) / 2), k
    total["total"].backward()
    got = [None if p.grad is None else p.grad.clone() for p in model.members[0].parameters()]
    assert sum(g is not None for g in got) > 10
    model.zero_grad()
    alone = compute_losses(model.members[0](s, r), *args)["total"] / 2
    alone.backward()
    for g, p in zip(got, model.members[0].parameters()):
        assert (g is None) == (p.grad is None) and (g is None or torch.allclose(g, p.grad, atol=1e-6))
    # a loss on the mean prediction would couple them: here member 1 gets no gradient from member 0's loss
    assert all(p.grad is None or not p.grad.any() for p in model.members[1].parameters())


def _trainer(**extra):
    data = load_training_data("sim:students=60,skills=4", 0.2, 0)
    over = dict(TINY, members="2", ema="0.8", ema_epochs="0", patience="99", **extra)
    mc, tc = build_configs(data.num_skills, "cumulative", "quick", over, epochs=2, device="cpu", seed=3)
    return Trainer(mc, tc, data)


def test_the_mastery_phase_trains_every_members_mastery_alone():
    tr = _trainer(mastery_epochs="2")
    tr.fit()
    assert [r.get("phase", "main") for r in tr.history] == ["main", "main", "mastery", "mastery"]
    trainable = {n for n, p in tr.model.named_parameters() if p.requires_grad}
    own = GainAKT2.MASTERY_ONLY
    assert trainable and all(n.split(".")[0] == "members" and n.split(".")[2] in own for n in trainable)
    for k in range(2):
        assert f"members.{k}.prior" in trainable and any(n.startswith(f"members.{k}.gain_rnn") for n in trainable)
    assert all(r["monotonicity_violation_rate"] == 0 and r["bounds_violation_rate"] == 0 for r in tr.history)


def test_a_trained_ensemble_saves_loads_and_scores_as_trained(tmp_path):
    run = create_run(tmp_path, data="sim:students=50,skills=4", mode="cumulative", preset="quick", epochs=1,
                     seed=0, overrides=dict(TINY, members="2"))
    execute_run(run)
    model, meta = load_checkpoint(run)
    assert model.cfg.members == 2 and len(model.members) == 2
    ds = random_dataset(4, 6, 4, max_len=45)
    a, b = score(model, ds), score(load_checkpoint(run)[0], ds)
    np.testing.assert_array_equal(a.probs, b.probs)
    np.testing.assert_allclose(1 / (1 + np.exp(-a.parts.sum(1).astype(np.float64))), a.probs, atol=1e-5)
    assert (np.diff(a.mastery[a.rows(0)], axis=0) >= -1e-6).all()


def test_members_are_checked_and_ensembles_train_in_one_process(monkeypatch):
    with pytest.raises(ValueError, match="members"):
        build_configs(4, "cumulative", "quick", {"members": "0"})
    monkeypatch.setattr(distributed, "active", lambda: True)
    with pytest.raises(ValueError, match="one process"):
        _trainer()


def test_an_ensemble_run_trains_in_one_process_even_with_several_gpus(tmp_path):
    from cmkt.runs.torchrun import train_command
    one = create_run(tmp_path, data="sim", mode="cumulative", preset="quick", epochs=1, overrides=dict(TINY), name="one")
    ens = create_run(tmp_path, data="sim", mode="cumulative", preset="quick", epochs=1,
                     overrides=dict(TINY, members="2"), name="ens")
    assert "torch.distributed.run" in train_command(one, "auto", gpus=4)
    assert train_command(ens, "auto", gpus=4)[1:] == ["-m", "cmkt", "train", "--resume", str(ens)]


def test_the_accuracy_presets_make_the_cumulative_model_an_ensemble_with_a_mastery_phase():
    for preset in ("standard", "intensive"):
        mc, tc = build_configs(10, "cumulative", preset)
        assert (mc.members, tc.mastery_epochs, tc.select_on) == (3, 6, "auc")
        assert tuple(tc.weights())[2] == 1.2
    mc, tc = build_configs(10, "cumulative", "quick")                     # minutes on a laptop: one model
    assert (mc.members, tc.mastery_epochs) == (1, 0)
    assert tuple(tc.weights())[2] == 1.4                                 # the hinge at 1.4: no mastery phase (saturation)
    assert mc.gain_encoder == "value"                                    # no gain LSTM: the fast preset
    assert build_configs(10, "cumulative", "standard")[0].gain_encoder == "recurrent"
    assert build_configs(10, "cumulative", "quick", {"gain_encoder": "recurrent"})[0].gain_encoder == "recurrent"
    mc, tc = build_configs(10, "original", "standard")                    # the phase is cumulative-only
    assert (mc.members, tc.mastery_epochs) == (1, 0)
    mc, tc = build_configs(10, "cumulative", "standard", {"members": "1", "mastery_epochs": "0"})
    assert (mc.members, tc.mastery_epochs) == (1, 0)
