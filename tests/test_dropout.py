"""The fast CPU dropout kernel (cmkt/model/dropout.py) is inverted dropout at rate p."""
import pytest
import torch
import torch.nn as nn

from cmkt.model import GainAKT2, ModelConfig
from cmkt.model.dropout import FastDropout, dropout_mask, fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_drops_at_rate_p_and_keeps_the_mean(p):
    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = fast_dropout(x, p)
    dropped = float((y == 0).float().mean())
    assert dropped == pytest.approx(p, abs=0.004)          # ~5 standard errors at n = 400k
    assert float(y.mean()) == pytest.approx(1.0, abs=0.02)
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, kept[0].item())) and kept[0] > 1


def test_masks_are_independent_between_elements_and_calls():
    torch.manual_seed(1)
    a, b = dropout_mask((200_000,), 0.5), dropout_mask((200_000,), 0.5)
    assert not torch.equal(a, b)
    # neighbours come from the same 64-bit draw: they must still be uncorrelated
    af = a.float()
    r = torch.corrcoef(torch.stack([af[:-1], af[1:]]))[0, 1]
    assert abs(float(r)) < 0.01
    assert abs(float(torch.corrcoef(torch.stack([af, b.float()]))[0, 1])) < 0.01


def test_identity_in_eval_and_at_p_zero_and_gradient_is_the_mask():
    x = torch.randn(8, 30, 16, requires_grad=True)
    assert fast_dropout(x, 0.3, training=False) is x
    assert fast_dropout(x, 0.0) is x
    torch.manual_seed(2)
    y = fast_dropout(x, 0.3)
    y.sum().backward()
    scale = y.detach() / x.detach()
    assert torch.allclose(x.grad, torch.where(y.detach() == 0, torch.zeros_like(x), scale))
    assert y.shape == x.shape and y.dtype == x.dtype


def test_same_seed_same_mask():
    torch.manual_seed(3)
    a = fast_dropout(torch.ones(1000), 0.2)
    torch.manual_seed(3)
    assert torch.equal(a, fast_dropout(torch.ones(1000), 0.2))


def test_model_uses_the_kernel_its_config_names():
    fast = GainAKT2(ModelConfig(num_skills=4, d_model=8, n_heads=2, d_ff=8, dropout_kernel="fast"))
    plain = GainAKT2(ModelConfig(num_skills=4, d_model=8, n_heads=2, d_ff=8))
    drops = [m for m in fast.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(isinstance(m, FastDropout) for m in drops)
    assert not any(isinstance(m, FastDropout) for m in plain.modules())
    assert set(fast.state_dict()) == set(plain.state_dict())        # no weights of its own
    with pytest.raises(ValueError, match="dropout_kernel"):
        ModelConfig(num_skills=4, dropout_kernel="cudnn")
