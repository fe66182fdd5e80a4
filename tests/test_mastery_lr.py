"""TrainConfig.mastery_lr_scale: the parameters that only make mastery (the gains' own encoder
and head, the prior) learn at a multiple of the rest's learning rate."""
import pytest
import torch

from cmkt.train.config import TrainConfig, build_configs
from cmkt.data.source import load_training_data
from cmkt.train.trainer import Trainer

TINY = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "20", "dropout": "0",
        "recurrent": "8", "gain_hidden": "8", "patience": "99", "members": "1"}


def _trainer(mode="cumulative", **extra):
    data = load_training_data("sim:students=40,skills=4", 0.2, 0)
    tiny = TINY if mode != "dkt" else {"hidden": "8", "emb": "8"}
    mc, tc = build_configs(data.num_skills, mode, "standard", dict(tiny, **extra), epochs=1, device="cpu", seed=3)
    return Trainer(mc, tc, data)


def test_mastery_parameters_get_their_own_rate_and_follow_the_plateaus():
    tr = _trainer(mastery_lr_scale="3")
    rest, mastery = tr.opt.param_groups
    names = {id(p): n for n, p in tr.model.named_parameters()}
    own = {names[id(p)].split(".")[0] for p in mastery["params"]}
    assert own == {"gain_embed", "gain_rnn", "gain_head", "prior"}
    assert not {names[id(p)].split(".")[0] for p in rest["params"]} & own
    assert len(rest["params"]) + len(mastery["params"]) == len(list(tr.model.parameters()))
    assert mastery["lr"] == pytest.approx(3 * rest["lr"]) and rest["lr"] == tr.cfg.lr
    for _ in range(3):                          # no improvement: the plateau halves both rates
        tr.sched.step(0.5)
    assert rest["lr"] == pytest.approx(tr.cfg.lr / 2) and mastery["lr"] == pytest.approx(1.5 * tr.cfg.lr)
    # one Adam step (one batch) moves each weight by about its group's rate: 3x on the mastery side
    moved = {}
    for scale in ("1", "3"):
        tr = _trainer(mastery_lr_scale=scale, batch_size="100000")
        before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
        tr.train_epoch(1)
        moved[scale] = {n: (p.detach() - before[n]).abs().max().item() for n, p in tr.model.named_parameters()}
    assert moved["3"]["gain_head.weight"] / moved["1"]["gain_head.weight"] == pytest.approx(3, rel=0.05)
    assert moved["3"]["gain_rnn.weight_hh_l0"] / moved["1"]["gain_rnn.weight_hh_l0"] == pytest.approx(3, rel=0.05)
    assert moved["3"]["predictor.0.weight"] / moved["1"]["predictor.0.weight"] == pytest.approx(1, rel=0.05)

def test_one_rate_keeps_one_group_and_a_baseline_has_nothing_to_split():
    assert len(_trainer().opt.param_groups) == 1
    assert len(_trainer(mode="dkt", mastery_lr_scale="2").opt.param_groups) == 1
    with pytest.raises(ValueError, match="mastery_lr_scale"):
        TrainConfig(mastery_lr_scale=0)
