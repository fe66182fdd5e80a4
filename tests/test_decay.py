"""The parallel gain encoder (gain_encoder = "decay", cmkt/model/decay.py): its one matmul equals
the step-by-step recurrence it replaces, it never reads the future, and it trains."""
import pytest
import torch

from cmkt.model import GainAKT2, ModelConfig
from cmkt.model.decay import DECAYS, DecayEncoder


def test_the_parallel_sums_equal_the_recurrence_step_by_step():
    torch.manual_seed(0)
    enc = DecayEncoder(n_tokens=10, hidden=16, max_len=12).double()
    tokens = torch.randint(0, 10, (3, 9))
    got = torch.einsum("kts,bskc->btkc", enc.weights(9, enc.embed.weight), enc.embed(tokens).view(3, 9, 8, 2))
    e = enc.embed(tokens).view(3, 9, 8, 2)
    state = torch.zeros(3, 8, 2, dtype=torch.float64)
    for t in range(9):                                             # h_t = λ h_{t-1} + (1 - λ) e_t
        for k, lam in enumerate(DECAYS):
            if lam < 1:
                state[:, k] = lam * state[:, k] + (1 - lam) * e[:, t, k]
            else:
                state[:, k] = state[:, k] + e[:, t, k] / 12
        assert torch.allclose(got[:, t], state, atol=1e-12)


@torch.no_grad()
def test_step_t_never_reads_a_later_interaction():
    torch.manual_seed(1)
    enc = DecayEncoder(n_tokens=10, hidden=16, max_len=20).eval()
    a = torch.randint(0, 10, (2, 15))
    b = a.clone()
    b[:, 9:] = (b[:, 9:] + 3) % 10
    ha, hb = enc(a), enc(b)
    assert torch.equal(ha[:, :9], hb[:, :9]) and not torch.allclose(ha[:, 9:], hb[:, 9:])


def test_the_width_must_split_into_the_rates():
    with pytest.raises(ValueError, match="multiple of 8"):
        ModelConfig(num_skills=5, gain_encoder="decay", gain_hidden=12)


def test_a_decay_model_trains_and_keeps_the_guarantees():
    torch.manual_seed(2)
    cfg = ModelConfig(num_skills=6, d_model=16, n_heads=2, d_ff=16, max_len=20, predictor="mastery",
                      base="prior", accumulation="gap", momentary_bound=None, gain_encoder="decay", gain_hidden=16)
    model = GainAKT2(cfg)
    s, r = torch.randint(0, 6, (4, 20)), torch.randint(0, 2, (4, 20))
    out = model(s, r)
    out.mastery.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.gain_decay.parameters())
    assert bool((out.gains >= 0).all()) and bool((out.mastery[:, 1:] >= out.mastery[:, :-1] - 1e-6).all())
