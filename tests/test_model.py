"""GainAKT2: guarantees of the cumulative mode, the closed form, causality, losses."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from cmkt.data.dataset import KTDataset
from cmkt.analysis.metrics import compute_metrics
from cmkt.model import GainAKT2, LOSS_WEIGHT_SETS, ModelConfig, compute_losses, cumulative_mastery
from cmkt.analysis.scoring import score


def random_dataset(seed, n_students, num_skills, max_len=30):
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, max_len + 1, n_students)
    return KTDataset(
        skills=[rng.integers(0, num_skills, n) for n in lens],
        responses=[rng.integers(0, 2, n) for n in lens],
        student_ids=[str(i) for i in range(n_students)],
        num_skills=num_skills, skill_labels=[str(i + 1) for i in range(num_skills)],
        skill_names=[f"k{i}" for i in range(num_skills)])


def perturb_weights(model, seed, scale):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), num_skills=st.integers(1, 9), scale=st.floats(0.0, 3.0),
       max_len=st.integers(2, 16))
def test_cumulative_mode_never_violates(seed, num_skills, scale, max_len):
    """Random weights (perturbed heavily), random students, windows shorter than the
    students: exactly zero monotonicity, negative-gain and bounds violations."""
    torch.manual_seed(seed)
    model = GainAKT2(ModelConfig(num_skills=num_skills, max_len=max_len, d_model=16, n_heads=2,
                                 n_blocks=1, d_ff=16, mode="cumulative"))
    perturb_weights(model, seed, scale)
    m = compute_metrics(score(model, random_dataset(seed, 12, num_skills, max_len=3 * max_len)))
    assert m["monotonicity_violation_rate"] == 0
    assert m["negative_gain_rate"] == 0
    assert m["bounds_violation_rate"] == 0
    assert m["students_with_violation"] == 0


@pytest.mark.parametrize("seed", range(5))
def test_original_mode_violates_at_random_init(seed):
    torch.manual_seed(seed)
    model = GainAKT2(ModelConfig(num_skills=8, max_len=40, d_model=32, n_heads=4, n_blocks=1, d_ff=32,
                                 mode="original"))
    m = compute_metrics(score(model, random_dataset(seed, 20, 8)))
    assert m["bounds_violation_rate"] > 0
    assert m["negative_gain_rate"] > 0
    assert m["monotonicity_violation_rate"] > 0


@pytest.mark.parametrize("seed", range(5))
def test_closed_form_equals_step_by_step_recursion(seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 1, 7, generator=g)
    gains = torch.relu(torch.randn(3, 50, 7, generator=g) * 2)
    closed = cumulative_mastery(base, gains, 0.1)
    m = base[:, 0]
    for t in range(gains.shape[1]):
        m = torch.clamp(m + 0.1 * gains[:, t], 0, 1)
        assert torch.allclose(closed[:, t], m, atol=1e-6)


def test_model_mastery_matches_recursion():
    torch.manual_seed(0)
    cfg = ModelConfig(num_skills=5, max_len=20, d_model=16, n_heads=2, n_blocks=1, d_ff=16, gain_scale=0.3)
    model = GainAKT2(cfg).eval()
    perturb_weights(model, 1, 1.0)
    s = torch.randint(0, 5, (4, 20))
    r = torch.randint(0, 2, (4, 20))
    out = model(s, r)
    assert out.gains.min() >= 0
    m_prev = out.mastery[:, 0]
    for t in range(1, 20):
        expect = torch.clamp(m_prev + 0.3 * out.gains[:, t], 0, 1)
        assert torch.allclose(out.mastery[:, t], expect, atol=1e-6)
        m_prev = out.mastery[:, t]


@pytest.mark.parametrize("mode", ["original", "cumulative"])
def test_prediction_at_t_never_sees_step_t_or_later(mode):
    torch.manual_seed(0)
    model = GainAKT2(ModelConfig(num_skills=6, max_len=25, d_model=16, n_heads=2, n_blocks=2, d_ff=16,
                                 mode=mode)).eval()
    s = torch.randint(0, 6, (3, 25))
    r = torch.randint(0, 2, (3, 25))
    base = model(s, r).logits
    for t in (0, 1, 7, 24):
        r2 = r.clone()
        r2[:, t:] = 1 - r2[:, t:]                   # flip r_t and everything after
        s2 = s.clone()
        s2[:, t + 1:] = (s2[:, t + 1:] + 1) % 6     # change later skills too (s_t itself is allowed)
        out = model(s2, r2).logits
        assert torch.allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6)
        if t + 1 < 25:
            assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])


def test_scoring_is_independent_of_batch_padding():
    """A student's outputs do not depend on who else is in the batch (padding is inert)."""
    torch.manual_seed(0)
    model = GainAKT2(ModelConfig(num_skills=5, max_len=40, d_model=16, n_heads=2, n_blocks=1, d_ff=16))
    ds = random_dataset(3, 10, 5, max_len=40)
    together = score(model, ds, batch_size=10)
    alone = score(model, ds.subset([4]), batch_size=1)
    sl = together.rows(4)
    np.testing.assert_allclose(together.mastery[sl], alone.mastery, atol=1e-5)
    np.testing.assert_allclose(together.probs[sl], alone.probs, atol=1e-5)


@pytest.mark.parametrize("weights", list(LOSS_WEIGHT_SETS))
def test_losses_ignore_padding(weights):
    torch.manual_seed(0)
    cfg = ModelConfig(num_skills=4, max_len=12, d_model=16, n_heads=2, n_blocks=1, d_ff=16, mode="original",
                      dropout=0.0)
    model = GainAKT2(cfg).eval()
    s = torch.randint(0, 4, (2, 8))
    r = torch.tensor([[0, 1] * 4, [1, 0] * 4])
    mask = torch.ones(2, 8, dtype=torch.bool)
    short = compute_losses(model(s, r), s, r, mask, LOSS_WEIGHT_SETS[weights], 0.1)
    # pad with 4 junk steps: losses must not move
    s_pad = torch.cat([s, torch.randint(0, 4, (2, 4))], 1)
    r_pad = torch.cat([r, torch.randint(0, 2, (2, 4))], 1)
    mask_pad = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], 1)
    padded = compute_losses(model(s_pad, r_pad), s_pad, r_pad, mask_pad, LOSS_WEIGHT_SETS[weights], 0.1)
    for k in short:
        assert torch.allclose(short[k], padded[k], atol=1e-6), k


def test_cumulative_losses_zero_for_guaranteed_properties():
    torch.manual_seed(0)
    cfg = ModelConfig(num_skills=4, max_len=12, d_model=16, n_heads=2, n_blocks=1, d_ff=16)
    model = GainAKT2(cfg)
    s = torch.randint(0, 4, (3, 12))
    r = torch.randint(0, 2, (3, 12))
    losses = compute_losses(model(s, r), s, r, torch.ones(3, 12, dtype=torch.bool), LOSS_WEIGHT_SETS["plain"], 0.1)
    assert losses["non_negative"] == 0
    assert losses["monotonicity"] == 0
    assert torch.isfinite(losses["total"])
    losses["total"].backward()


@pytest.mark.parametrize("seed", range(3))
def test_the_losses_a_cumulative_output_skips_or_shortens_give_the_same_values_and_gradients(seed):
    """A cumulative output says its gains are >= 0, its mastery never falls and moves by exactly
    gain_scale * gains (gap accumulation). The non-negative and monotonicity losses it then skips are
    exactly what computing them gives (0, no gradient); consistency is 0 up to rounding; sparsity,
    summed over all skills less the practised one, equals the masked mean of |g|. The gradients for
    every weight agree (heavily perturbed weights, padded students, the strongest weights)."""
    import dataclasses
    torch.manual_seed(seed)
    model = GainAKT2(ModelConfig(num_skills=5, max_len=16, d_model=16, n_heads=2, n_blocks=1, d_ff=16,
                                 mode="cumulative", gain_encoder="recurrent", predictor="mastery",
                                 base="prior", accumulation="gap"))
    perturb_weights(model, seed, 2.0)
    s, r = torch.randint(0, 5, (4, 16)), torch.randint(0, 2, (4, 16))
    mask = torch.arange(16)[None, :] < torch.tensor([16, 9, 3, 12])[:, None]
    weights = (5.0, 5.0, 1.2, 0.3, 0.3, 0.1)
    grads, values = [], []
    for skip in (True, False):
        model.zero_grad()
        torch.manual_seed(seed)                      # the same dropout masks
        out = model(s, r)
        assert out.by_construction and out.consistent_by_construction
        general = dataclasses.replace(out, by_construction=False, consistent_by_construction=False)
        losses = compute_losses(out if skip else general, s, r, mask, weights, 0.1, 1.5)
        assert float(losses["non_negative"].detach()) == 0 and float(losses["monotonicity"].detach()) == 0
        values.append({k: float(v.detach()) for k, v in losses.items()})
        losses["total"].backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert values[0]["consistency"] == 0 and values[1]["consistency"] < 1e-6
    for k in values[0]:
        assert values[0][k] == pytest.approx(values[1][k], rel=1e-5, abs=1e-6), k
    assert len(grads[0]) == len(grads[1]) > 0
    scale = max(float(b.abs().max()) for b in grads[1])
    for a, b in zip(*grads):                         # the same up to float rounding (summation order)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * scale)
    original = GainAKT2(ModelConfig(num_skills=5, max_len=16, d_model=16, n_heads=2, n_blocks=1, d_ff=16,
                                    mode="original"))(s, r)
    assert not original.by_construction and not original.consistent_by_construction
    plain = GainAKT2(ModelConfig(num_skills=5, max_len=16, d_model=16, n_heads=2, n_blocks=1, d_ff=16,
                                 mode="cumulative", accumulation="linear"))(s, r)
    assert plain.by_construction and not plain.consistent_by_construction   # the clamp can bind there


def test_config_roundtrip_and_validation():
    cfg = ModelConfig(num_skills=7, mode="original", d_model=32, n_heads=4)
    assert ModelConfig(**cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        ModelConfig(num_skills=7, mode="bogus")
    with pytest.raises(ValueError):
        ModelConfig.from_dict({**cfg.to_dict(), "surprise": 1})
    with pytest.raises(ValueError):
        GainAKT2(ModelConfig(num_skills=3, max_len=4))(torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 5, dtype=torch.long))


def test_mastery_hinges_by_hand():
    from cmkt.model.losses import _hinge_gap, _hinge_level
    MASTERY_HINGES = {"level": _hinge_level, "gap": _hinge_gap}      # gap: the gain-performance hinge
    v = torch.tensor([[0.7, 0.3, 0.55, 0.45, 9.0]])
    r = torch.tensor([[1, 0, 1, 0, 1]])
    mask = torch.tensor([[True, True, True, True, False]])        # the 9.0 is padding
    # level: correct below 0.6 and wrong above 0.4 cost their distance: (0 + 0.05) / 2 + (0 + 0.05) / 2
    assert MASTERY_HINGES["level"](v, r, mask).item() == pytest.approx(0.05, abs=1e-6)
    # gap: correct vs mean wrong (0.375): relu(0.1 - 0.325), relu(0.1 - 0.175) -> 0;
    # wrong vs mean correct (0.625): relu(0.1 - 0.325), relu(0.1 - 0.175) -> 0
    assert MASTERY_HINGES["gap"](v, r, mask).item() == pytest.approx(0.0, abs=1e-6)
    close = torch.tensor([[0.52, 0.5, 0.0, 0.0, 0.0]])
    m2 = torch.tensor([[True, True, False, False, False]])
    assert MASTERY_HINGES["gap"](close, r, m2).item() == pytest.approx(2 * (0.1 - 0.02), abs=1e-6)


def test_long_students_are_scored_with_context_and_keep_guarantees():
    """Students longer than the model window: every step scored once, predictions after the
    first window are made with the steps before them as context, and cumulative mastery stays
    monotone and bounded across windows."""
    from cmkt.data.batching import chained_windows
    ds = random_dataset(5, 6, 5, max_len=95)
    cw = chained_windows(ds, 20)
    w, keep = cw.windows, cw.keep_from
    for i, n in enumerate(ds.lengths):
        mine = np.nonzero(w.row == i)[0]
        kept = np.concatenate([np.arange(keep[k], w.end[k]) for k in mine])
        assert np.array_equal(kept, np.arange(n))               # each step kept exactly once
        assert all(w.end[k] - w.start[k] <= 20 for k in mine)
        assert all(keep[k] - w.start[k] == (0 if keep[k] == 0 else 20 - (w.end[k] - keep[k])) for k in mine)
    torch.manual_seed(0)
    model = GainAKT2(ModelConfig(num_skills=5, max_len=20, d_model=16, n_heads=2, n_blocks=1, d_ff=16))
    perturb_weights(model, 0, 2.0)
    m = compute_metrics(score(model, ds))
    assert m["students_with_violation"] == 0 and m["n_interactions"] == int(ds.lengths.sum())
    # a step after the first window is predicted from the 10 steps before it (stride 10)
    i = int(np.argmax(ds.lengths))
    t = 35
    full = score(model, ds.subset([i])).probs[t]
    lo = t - (t - 20) % 10 - 10 if t >= 20 else 0
    direct = torch.sigmoid(model(torch.as_tensor(ds.skills[i][None, lo:lo + 20]),
                                 torch.as_tensor(ds.responses[i][None, lo:lo + 20])).logits)[0, t - lo]
    assert float(direct) == pytest.approx(float(full), abs=1e-5)


def _first_layer_on_the_concatenation(model, ctx, val, skills, extra):
    """The predictor's first layer as it was written before first_layer: on the explicit input."""
    B = ctx.shape[0]
    prev_ctx = torch.cat([model.start[0].expand(B, 1, -1), ctx[:, :-1]], 1)
    prev_val = torch.cat([model.start[1].expand(B, 1, -1), val[:, :-1]], 1)
    return model.predictor[0](torch.cat([prev_ctx, prev_val, model.skill_embed(skills), *extra], -1))


@pytest.mark.parametrize("extra_cfg", [{}, {"readout": "attention", "recurrent": 12, "recurrent_head": "skill"}])
@pytest.mark.parametrize("batch", [(3, 12), (1, 2)])          # the skill table, then many skills for a few steps
def test_the_predictors_first_layer_is_the_layer_on_the_shifted_streams_and_the_skill(extra_cfg, batch):
    """first_layer computes predictor[0]([prev_ctx, prev_val, skill_e, *extra]) piece by piece
    (streams shifted after the matmul, the skill part from a table): the same values and gradients."""
    torch.manual_seed(0)
    model = GainAKT2(ModelConfig(num_skills=7, max_len=12, d_model=16, n_heads=2, n_blocks=1, d_ff=24,
                                 mode="cumulative", **extra_cfg))
    perturb_weights(model, 1, 0.5)
    (B, T), D = batch, 16
    ctx, val = torch.randn(B, T, D), torch.randn(B, T, D)
    skills = torch.randint(0, 7, (B, T))
    extra = [torch.randn(B, T, D), torch.randn(B, T, 12)] if extra_cfg else []
    explicit = _first_layer_on_the_concatenation(model, ctx, val, skills, extra)
    grads_explicit = torch.autograd.grad(explicit.square().sum(), list(model.parameters()), allow_unused=True)
    pieces = model.first_layer(ctx, val, skills, extra)
    grads_pieces = torch.autograd.grad(pieces.square().sum(), list(model.parameters()), allow_unused=True)
    torch.testing.assert_close(pieces, explicit, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_pieces, grads_explicit):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):         # mixed precision: the layer's own dtype
        bf_explicit = _first_layer_on_the_concatenation(model, ctx, val, skills, extra)
        bf_pieces = model.first_layer(ctx, val, skills, extra)
    assert bf_pieces.dtype == bf_explicit.dtype == torch.bfloat16
    torch.testing.assert_close(bf_pieces.float(), bf_explicit.float(), rtol=0.05, atol=0.1)


@pytest.mark.parametrize("cfg", [dict(mode="cumulative"), dict(mode="original"), dict(predictor="mlp"),
                                 dict(mode="cumulative", members=3)])
def test_the_model_reads_the_first_layer_it_always_did(cfg, monkeypatch):
    """The whole forward pass with first_layer swapped back to the layer on the explicit
    concatenation gives the same logits, mastery and gains (every mode, an ensemble)."""
    torch.manual_seed(2)
    model = GainAKT2(ModelConfig(num_skills=6, max_len=15, d_model=16, n_heads=2, n_blocks=1, d_ff=24,
                                 dropout=0.0, **{"predictor": "mastery", "base": "prior", **cfg}))
    perturb_weights(model, 3, 0.5)
    s, r = torch.randint(0, 6, (4, 15)), torch.randint(0, 2, (4, 15))
    new = model(s, r)
    nets = model.members if cfg.get("members") else [model]
    for net in nets:
        monkeypatch.setattr(net, "first_layer", lambda *a, net=net: _first_layer_on_the_concatenation(net, *a))
    old = model(s, r)
    for name in ("logits", "mastery", "gains"):
        torch.testing.assert_close(getattr(new, name), getattr(old, name), rtol=1e-5, atol=1e-5)
