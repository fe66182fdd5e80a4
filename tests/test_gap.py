"""cmkt.model.gap: gap gains and cumulative mastery in one autograd step (the same values as the
two functions it replaces, the gradient of their closed form)."""
import pytest
import torch

from cmkt.model import GainAKT2, ModelConfig
from cmkt.model.gap import cumulative_mastery, gap_gains, gap_mastery


def _inputs(seed, dtype, B=3, T=9, C=5):
    g = torch.Generator().manual_seed(seed)
    raw = (torch.randn(B, T, C, generator=g, dtype=dtype) * 3).relu()      # many exact zeros, as ReLU gives
    raw[0, 4:] = 0                                                          # a row without gains after step 4
    base = torch.rand(B, C, generator=g, dtype=dtype)
    base[1, 0] = 1.0                                                        # a skill already mastered
    return base, raw


@pytest.mark.parametrize("seed", range(4))
def test_values_are_bit_identical_to_gap_gains_then_cumulative_mastery(seed):
    base, raw = _inputs(seed, torch.float32)
    gains, mastery = gap_mastery(base, raw, 0.1)
    want_gains = gap_gains(base, raw, 0.1)
    assert torch.equal(gains, want_gains)
    assert torch.equal(mastery, cumulative_mastery(base.unsqueeze(1), want_gains, 0.1))
    assert (gains >= 0).all() and (mastery[:, 1:] >= mastery[:, :-1]).all() and (mastery <= 1).all()


@pytest.mark.parametrize("use", ["both", "gains", "mastery"])   # one output unused: its gradient is None
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_the_gradient_is_autograds_of_the_two_functions(use, dtype, tol):
    base, raw = _inputs(7, dtype)
    base.requires_grad_(), raw.requires_grad_()
    g = torch.Generator().manual_seed(1)
    wg, wm = torch.randn(raw.shape, generator=g, dtype=dtype), torch.randn(raw.shape, generator=g, dtype=dtype)

    def loss(gains, mastery):
        return ((gains * wg).sum() if use != "mastery" else 0) + ((mastery * wm).sum() if use != "gains" else 0)

    got = torch.autograd.grad(loss(*gap_mastery(base, raw, 0.1)), (base, raw))
    gains = gap_gains(base, raw, 0.1)
    want = torch.autograd.grad(loss(gains, cumulative_mastery(base.unsqueeze(1), gains, 0.1)), (base, raw))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_a_second_derivative_is_refused_rather_than_wrong():
    base = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    raw = (torch.rand(2, 6, 3, dtype=torch.float64) + 0.05).requires_grad_()
    gains, mastery = gap_mastery(base, raw, 0.3)
    (d_raw,) = torch.autograd.grad(mastery.sum() + gains.sum(), (raw,), create_graph=True)
    with pytest.raises(RuntimeError):
        d_raw.sum().backward()


def test_gradcheck_and_inputs_without_gradient():
    base = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    raw = (torch.rand(2, 6, 3, dtype=torch.float64) + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(lambda b, r: gap_mastery(b, r, 0.3), (base, raw))
    fixed = base.detach()                                   # a chained window's start: no gradient
    gains, mastery = gap_mastery(fixed, raw, 0.3)
    (d_raw,) = torch.autograd.grad(mastery.sum(), (raw,))
    assert d_raw.shape == raw.shape and torch.isfinite(d_raw).all()


@pytest.mark.parametrize("mode", ["cumulative", "original"])
def test_the_mastery_part_reads_the_mastery_before_each_step(mode):
    """parts[..., 0] is the mastery reading of m_{t-1}[s_t] (m0 at t = 0 and on a continuing
    window's context steps), picked without building the shifted (B, T, C) tensor."""
    torch.manual_seed(0)
    C, T = 6, 12
    model = GainAKT2(ModelConfig(num_skills=C, max_len=T, d_model=16, n_heads=2, d_ff=16, mode=mode,
                                 predictor="mastery", base="prior", accumulation="gap")).eval()
    s, r = torch.randint(0, C, (3, T)), torch.randint(0, 2, (3, T))
    keep_from = torch.tensor([0, 4, 7])
    start = torch.rand(3, C)
    with torch.no_grad():
        out = model(s, r, start=start, keep_from=keep_from) if mode == "cumulative" else model(s, r)
        m0 = out.start.expand(3, C)
        m_prev = torch.cat([m0.unsqueeze(1), out.mastery[:, :-1]], dim=1)            # (B, T, C)
        if mode == "cumulative":
            ctx = (torch.arange(T)[None, :] <= keep_from[:, None]).unsqueeze(-1)
            m_prev = torch.where(ctx, m0.unsqueeze(1), m_prev)
        want = model.mastery_part(m_prev.gather(-1, s.unsqueeze(-1)).squeeze(-1))
    assert torch.equal(out.parts[..., 0], want)
