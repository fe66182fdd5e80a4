"""The `mastery` predictor (mastery + difficulty + momentary), the prior base, gap accumulation,
chained windows in training and scoring, and the guarantees under every predictor."""
import numpy as np
import pytest
import torch

from cmkt.train.config import TrainConfig
from cmkt.data.batching import chained_windows
from cmkt.data.source import DataSplits
from cmkt.analysis.metrics import compute_metrics
from cmkt.model import GainAKT2, ModelConfig
from cmkt.analysis.scoring import score
from cmkt.train.trainer import Trainer
from test_model import perturb_weights, random_dataset

SMALL = dict(d_model=16, n_heads=2, n_blocks=1, d_ff=16, dropout=0.0)
MASTERY = dict(predictor="mastery", base="prior")
VARIANTS = {
    "mlp-context-linear": dict(),
    "mlp-prior-gap": dict(base="prior", accumulation="gap"),
    "mastery-linear": dict(MASTERY),
    "mastery-gap-readout": dict(MASTERY, accumulation="gap", readout="attention"),
    "mastery-gap-bound0": dict(MASTERY, accumulation="gap", momentary_bound=0),
    "mastery-gap-unbounded": dict(MASTERY, accumulation="gap", momentary_bound=None),
    "mastery-gap-lstm": dict(MASTERY, accumulation="gap", momentary_bound=None, recurrent=8),
    "mastery-gap-lstm-head": dict(MASTERY, accumulation="gap", momentary_bound=None, recurrent=8,
                                  recurrent_head="skill"),
    "mastery-gap-gain-lstm": dict(MASTERY, accumulation="gap", momentary_bound=None, recurrent=8,
                                  recurrent_head="skill", gain_encoder="recurrent", gain_hidden=8),
    "mastery-gap-gain-lstm-readout": dict(MASTERY, accumulation="gap", momentary_bound=None, readout="attention",
                                          gain_encoder="recurrent", gain_hidden=8),
    # an ensemble of three (ModelConfig.members): its means must keep every promise a member keeps
    "ensemble-of-3": dict(MASTERY, accumulation="gap", momentary_bound=None, recurrent=8, recurrent_head="skill",
                          gain_encoder="recurrent", gain_hidden=8, members=3),
}


def model_of(num_skills=5, max_len=20, seed=0, mode="cumulative", **kw):
    torch.manual_seed(seed)
    return GainAKT2(ModelConfig(num_skills=num_skills, max_len=max_len, mode=mode, **{**SMALL, **kw}))


@pytest.mark.parametrize("bound", [0.0, 0.5, 2.0, None])
@pytest.mark.parametrize("mode", ["cumulative", "original"])
def test_parts_add_up_to_the_logit_and_momentary_is_bounded(bound, mode):
    model = model_of(mode=mode, seed=1, **MASTERY, momentary_bound=bound).eval()
    perturb_weights(model, 1, 2.0)
    s, r = torch.randint(0, 5, (4, 20)), torch.randint(0, 2, (4, 20))
    out = model(s, r)
    assert out.parts.shape == (4, 20, 3)
    assert torch.allclose(out.parts.sum(-1), out.logits, atol=1e-6)
    if bound is not None:
        assert out.parts[..., 2].abs().max() <= bound + 1e-6
    if bound == 0:
        assert torch.count_nonzero(out.parts[..., 2]) == 0
    else:
        assert out.parts[..., 2].abs().max() > 0
    # scoring keeps the parts per step, and they still add up (to the logit of the probability)
    traj = score(model, random_dataset(2, 6, 5, max_len=50))
    assert traj.parts.shape == (len(traj.probs), 3)
    p = 1 / (1 + np.exp(-traj.parts.sum(1).astype(np.float64)))
    np.testing.assert_allclose(p, traj.probs, atol=1e-5)


def test_mastery_part_increases_with_mastery():
    model = model_of(**MASTERY)
    perturb_weights(model, 3, 1.0)
    m = torch.linspace(0, 1, 101)[None, :]
    part = model.mastery_part(m)[0]
    assert bool((part[1:] >= part[:-1]).all()) and part[-1] > part[0]


@torch.no_grad()
def test_bound_zero_prediction_is_a_function_of_mastery_and_difficulty_only():
    """With momentary_bound=0, two different histories that leave the same mastery of s_t give
    the same prediction; different mastery of s_t gives a different one."""
    model = model_of(**MASTERY, accumulation="gap", momentary_bound=0).eval()
    perturb_weights(model, 2, 1.0)
    target = 3
    model.gain_head.weight[target] = 0          # no history ever moves the target skill's mastery
    model.gain_head.bias[target] = -1.0
    h1_s, h1_r = torch.tensor([[0, 1, 2, 0, 4, 1]]), torch.tensor([[1, 0, 1, 1, 0, 1]])
    h2_s, h2_r = torch.tensor([[4, 4, 2, 1, 0, 0]]), torch.tensor([[0, 0, 0, 1, 1, 0]])
    t = torch.tensor([[target]])
    p1 = model(torch.cat([h1_s, t], 1), torch.cat([h1_r, torch.zeros(1, 1, dtype=torch.long)], 1))
    p2 = model(torch.cat([h2_s, t], 1), torch.cat([h2_r, torch.ones(1, 1, dtype=torch.long)], 1))
    assert p1.mastery[0, -2, target] == pytest.approx(float(p2.mastery[0, -2, target]), abs=1e-7)
    assert float(p1.logits[0, -1]) == pytest.approx(float(p2.logits[0, -1]), abs=1e-6)
    # the same two histories on a skill whose mastery they do move: different predictions
    other = torch.tensor([[1]])
    q1 = model(torch.cat([h1_s, other], 1), torch.cat([h1_r, torch.zeros(1, 1, dtype=torch.long)], 1))
    q2 = model(torch.cat([h2_s, other], 1), torch.cat([h2_r, torch.zeros(1, 1, dtype=torch.long)], 1))
    assert abs(float(q1.logits[0, -1]) - float(q2.logits[0, -1])) > 1e-4
    # without the bound the streams do move it
    model.cfg.momentary_bound = None
    p1 = model(torch.cat([h1_s, t], 1), torch.cat([h1_r, torch.zeros(1, 1, dtype=torch.long)], 1))
    p2 = model(torch.cat([h2_s, t], 1), torch.cat([h2_r, torch.ones(1, 1, dtype=torch.long)], 1))
    assert abs(float(p1.logits[0, -1]) - float(p2.logits[0, -1])) > 1e-4


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("mode", ["original", "cumulative"])
def test_prediction_never_sees_the_answer_it_predicts(variant, mode):
    kw = VARIANTS[variant]
    if mode == "original" and kw.get("predictor") != "mastery" and kw:
        pytest.skip("base/accumulation only matter in cumulative mode")
    model = model_of(num_skills=6, max_len=25, mode=mode, **kw).eval()
    perturb_weights(model, 5, 0.5)
    s, r = torch.randint(0, 6, (3, 25)), torch.randint(0, 2, (3, 25))
    base = model(s, r).logits
    for t in (0, 1, 7, 24):
        r2, s2 = r.clone(), s.clone()
        r2[:, t:] = 1 - r2[:, t:]
        s2[:, t + 1:] = (s2[:, t + 1:] + 1) % 6
        out = model(s2, r2).logits
        assert torch.allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6)
        if t + 1 < 25:
            assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("seed", range(3))
def test_guarantees_hold_for_every_predictor(variant, seed):
    model = model_of(num_skills=6, max_len=12, seed=seed, **VARIANTS[variant])
    perturb_weights(model, seed, 3.0)
    m = compute_metrics(score(model, random_dataset(seed, 15, 6, max_len=60)))
    assert m["monotonicity_violation_rate"] == 0
    assert m["negative_gain_rate"] == 0
    assert m["bounds_violation_rate"] == 0
    assert m["students_with_violation"] == 0
    assert m["n_nonfinite"] == 0


@torch.no_grad()
def test_recurrent_skill_head_adds_the_lstm_state_read_at_the_target_skill():
    """recurrent_head='skill': the momentary part gains DKT's per-skill output of the LSTM state
    after t-1, read at s_t; moving one skill's output row moves only the steps that ask that skill,
    and only the momentary part (mastery and difficulty stay)."""
    model = model_of(num_skills=5, **MASTERY, momentary_bound=None, recurrent=8, recurrent_head="skill").eval()
    perturb_weights(model, 6, 0.5)
    s, r = torch.randint(0, 5, (3, 20)), torch.randint(0, 2, (3, 20))
    s[:, 0] = 1                                      # step 0 reads the zero state: only the bias counts
    before = model(s, r)
    model.rnn_out.weight[2] += 0.7
    model.rnn_out.bias[1] += 0.3
    after = model(s, r)
    moved = (after.logits - before.logits).abs() > 1e-6
    later = torch.zeros_like(moved)
    later[:, 1:] = True
    assert torch.equal(moved, ((s == 2) & later) | (s == 1))
    assert torch.allclose(after.parts[..., :2], before.parts[..., :2])
    assert torch.allclose(after.parts.sum(-1), after.logits, atol=1e-6)
    with pytest.raises(ValueError, match="recurrent_head"):
        ModelConfig(num_skills=5, recurrent=8, recurrent_head="dkt")
    assert not hasattr(model_of(**MASTERY, recurrent=8), "rnn_out")       # "none": no extra weights


def test_gap_accumulation_is_the_recursion_with_diminishing_returns():
    model = model_of(base="prior", accumulation="gap", gain_scale=0.5).eval()
    perturb_weights(model, 4, 0.3)
    s, r = torch.randint(0, 5, (3, 20)), torch.randint(0, 2, (3, 20))
    with torch.no_grad():
        out = model(s, r)
    m_prev = out.start
    for t in range(20):
        assert torch.allclose(out.mastery[:, t], m_prev + 0.5 * out.gains[:, t], atol=1e-6)
        assert bool((0.5 * out.gains[:, t] <= 1 - m_prev + 1e-7).all())   # a gain closes part of the gap
        m_prev = out.mastery[:, t]


@pytest.mark.parametrize("base", ["context", "prior"])
def test_the_first_answer_counts_once(base):
    """base 'context' reads step 1 into the base and credits no gain at step 1; base 'prior'
    starts from a per-skill prior and credits step 1's gain on top of it."""
    model = model_of(base=base).eval()
    perturb_weights(model, 6, 1.0)
    s, r = torch.randint(0, 5, (2, 10)), torch.randint(0, 2, (2, 10))
    out = model(s, r)
    if base == "context":
        assert torch.count_nonzero(out.gains[:, 0]) == 0
        assert torch.allclose(out.mastery[:, 0], out.start)
    else:
        assert torch.allclose(out.start, torch.sigmoid(model.prior).expand(2, -1))
        assert torch.allclose(out.mastery[:, 0], (out.start + 0.1 * out.gains[:, 0]).clamp(max=1), atol=1e-6)


def test_mastery_predictor_needs_the_prior_base_in_cumulative_mode():
    with pytest.raises(ValueError, match="base 'prior'"):
        ModelConfig(num_skills=3, predictor="mastery", base="context")


@torch.no_grad()
@pytest.mark.parametrize("mode", ["cumulative", "original"])
def test_a_recurrent_gain_encoder_makes_gains_independent_of_the_transformer(mode):
    """gain_encoder='recurrent': gains (and so cumulative mastery) are read from an LSTM of their
    own; moving the transformer's weights moves the prediction but not one gain. With the shared
    value stream ('value') the same move changes the gains."""
    s, r = torch.randint(0, 6, (3, 20)), torch.randint(0, 2, (3, 20))
    for encoder, independent in (("recurrent", True), ("value", False)):
        model = model_of(num_skills=6, mode=mode, **VARIANTS["mastery-gap-gain-lstm"] | {"gain_encoder": encoder,
                                                                               "gain_hidden": 8}).eval()
        perturb_weights(model, 2, 0.5)
        before = model(s, r)
        for p in model.blocks.parameters():
            p.add_(0.3)
        after = model(s, r)
        assert torch.equal(after.gains, before.gains) is independent
        assert not torch.allclose(after.logits, before.logits)
    assert model.gain_head.in_features == 16 and not hasattr(model, "gain_rnn")
    lstm = model_of(num_skills=6, **VARIANTS["mastery-gap-gain-lstm"])
    assert lstm.gain_head.in_features == 8 and lstm.gain_rnn.hidden_size == 8
    with pytest.raises(ValueError, match="gain_encoder"):
        ModelConfig(num_skills=5, gain_encoder="gru")


@pytest.mark.parametrize("encoder, reaches", [("value", True), ("recurrent", False)])
def test_only_the_shared_gain_encoder_sends_gradient_from_mastery_into_the_transformer(encoder, reaches):
    """gain_encoder 'recurrent' does not read the value stream: the mastery losses then train the
    gain side only (head, prior, the gains' own LSTM), never the transformer that the prediction
    shares."""
    s, r = torch.randint(0, 6, (3, 20)), torch.randint(0, 2, (3, 20))
    model = model_of(num_skills=6, **VARIANTS["mastery-gap-gain-lstm-readout"] | {"gain_encoder": encoder})
    model(s, r).mastery.sum().backward()
    grads = [p.grad for p in model.blocks.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads) is reaches
    assert model.gain_head.weight.grad.abs().sum() > 0
    if encoder != "value":
        assert all(p.grad.abs().sum() > 0 for p in model.gain_rnn.parameters())
        assert model.gain_head.in_features == 8


@pytest.mark.parametrize("variant", ["mlp-context-linear", "mastery-gap-readout", "mastery-gap-gain-lstm",
                                     "mastery-gap-gain-lstm-readout", "ensemble-of-3"])
@pytest.mark.parametrize("batch_tokens", [0, 80])
def test_long_students_are_trained_as_they_are_scored(variant, batch_tokens):
    """What the trainer feeds the model for a long student (chained windows, each starting from
    the previous window's last mastery) is exactly what scoring reports; also when short
    windows go many to a batch (batch_tokens)."""
    ds = random_dataset(7, 16, 5, max_len=10)
    ds.skills[0] = np.random.default_rng(0).integers(0, 5, 70)   # one student over 3 windows
    ds.responses[0] = np.random.default_rng(1).integers(0, 2, 70)
    mcfg = ModelConfig(num_skills=5, max_len=20, **{**SMALL, **VARIANTS[variant]})
    tcfg = TrainConfig(epochs=1, batch_size=4, batch_tokens=batch_tokens, lr=1e-12, weight_decay=0.0,
                       loss_weights=[0] * 6)
    trainer = Trainer(mcfg, tcfg, DataSplits(train=ds, valid=ds, test=None, num_skills=5,
                                            skill_labels=ds.skill_labels, skill_names=ds.skill_names, name="t"))
    perturb_weights(trainer.model, 8, 1.0)
    seen = {}
    forward = trainer.model.forward

    def spy(skills, responses, start=None, keep_from=None):
        out = forward(skills, responses, start=start, keep_from=keep_from)
        seen[len(seen)] = (skills, keep_from, out.mastery.detach().clone(), out.logits.detach().clone())
        return out
    trainer.model.forward = spy
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.requires_grad_(True)
    trainer.train_epoch(1)
    trainer.model.forward = forward
    cw = trainer.train_windows
    assert (cw.phase[cw.windows.row == 0] == [0, 1, 2, 3, 4, 5]).all()
    # rebuild student 0's kept mastery from what training saw, in its windows' order
    groups = cw.plan(4, shuffle=True, seed=tcfg.seed * 100_003 + 1, max_tokens=batch_tokens)
    assert (max(len(g) for g in groups) > 4) is (batch_tokens > 0)
    got_m = np.zeros((70, 5), np.float32)
    got_p = np.zeros(70, np.float32)
    for g, idx in enumerate(groups):
        _, k0, m, lg = seen[g]
        for b, w in enumerate(idx):
            if cw.windows.row[w] != 0:
                continue
            a, e, st = cw.keep_from[w], cw.windows.end[w], cw.windows.start[w]
            got_m[a:e] = m[b, a - st:e - st].numpy()
            got_p[a:e] = lg[b, a - st:e - st].numpy()
    traj = score(trainer.model, ds.subset([0]))
    np.testing.assert_allclose(got_m, traj.mastery, atol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-got_p)), traj.probs, atol=1e-5)
    # and the chain really carries: mastery never restarts at a window boundary
    assert (np.diff(traj.mastery, axis=0) >= -1e-6).all()


def test_chained_windows_keep_every_step_once():
    ds = random_dataset(9, 8, 4, max_len=95)
    cw = chained_windows(ds, 20)
    for i, n in enumerate(ds.lengths):
        mine = np.nonzero(cw.windows.row == i)[0]
        kept = np.concatenate([np.arange(cw.keep_from[k], cw.windows.end[k]) for k in mine])
        assert np.array_equal(kept, np.arange(n))
    order = np.concatenate(cw.plan(3, shuffle=True, seed=1))
    pos = np.empty(len(order), int)
    pos[order] = np.arange(len(order))
    cont = np.nonzero(cw.continues)[0]
    assert (pos[cont] > pos[cont - 1]).all()          # every window after the one it continues


def test_mastery_is_float32_under_bf16_autocast():
    """Mixed precision never touches the guarantees: mastery and gains are computed in float32."""
    model = model_of(num_skills=6, max_len=40, **VARIANTS["mastery-gap-readout"]).train()
    s, r = torch.randint(0, 6, (3, 40)), torch.randint(0, 2, (3, 40))
    start, keep = torch.rand(3, 6), torch.tensor([0, 5, 10])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(s, r, start=start, keep_from=keep)
    assert out.mastery.dtype == torch.float32 and out.gains.dtype == torch.float32
    assert bool((out.gains >= 0).all()) and bool((out.mastery <= 1).all())
    assert bool((out.mastery[:, 1:] >= out.mastery[:, :-1] - 1e-6).all())


def test_checkpoints_written_before_gain_encoder_load_as_trained_and_foreign_gain_weights_are_refused(tmp_path):
    """A checkpoint whose saved config predates gain_encoder / gain_hidden rebuilds with the value
    stream (as it was trained) and predicts the same; an LSTM encoder's weights under a config
    that has none are refused, naming the file."""
    import json as _json
    from safetensors.torch import save_file
    from cmkt.runs.checkpoint import FORMAT, load_checkpoint, save_checkpoint
    from cmkt.errors import CheckpointError
    from cmkt.train.kinds import config_to_dict
    s, r = torch.randint(0, 6, (2, 12)), torch.randint(0, 2, (2, 12))
    old = model_of(num_skills=6, **VARIANTS["mastery-gap-readout"]).eval()
    old_cfg = {k: v for k, v in config_to_dict(old.cfg).items() if k not in ("gain_encoder", "gain_hidden")}
    state = {k: v.contiguous() for k, v in old.state_dict().items()}
    path = tmp_path / "old.safetensors"
    save_file(state, str(path), metadata={"format": FORMAT, "model_config": _json.dumps(old_cfg), "meta": "{}"})
    loaded, _ = load_checkpoint(path)
    assert loaded.cfg.gain_encoder == "value" and not hasattr(loaded, "gain_rnn")
    with torch.no_grad():
        assert torch.equal(loaded.eval()(s, r).logits, old(s, r).logits)

    lstm = model_of(num_skills=6, **VARIANTS["mastery-gap-gain-lstm"])
    save_checkpoint(lstm, tmp_path / "lstm.safetensors")
    assert load_checkpoint(tmp_path / "lstm.safetensors")[0].cfg.gain_encoder == "recurrent"
    foreign = tmp_path / "foreign.safetensors"
    cfg = {**config_to_dict(lstm.cfg), "gain_encoder": "value"}
    save_file({k: v.contiguous() for k, v in lstm.state_dict().items()}, str(foreign),
              metadata={"format": FORMAT, "model_config": _json.dumps(cfg), "meta": "{}"})
    with pytest.raises(CheckpointError, match="foreign.safetensors"):
        load_checkpoint(foreign)
