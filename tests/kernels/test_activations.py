"""tanh through the sigmoid: values and gradients (first and second order)
equal torch.tanh's, and the fallbacks."""
import pytest
import torch

from native_pyg.kernels.activations import MIN_NUMEL, tanh


def test_values_and_gradients_equal_torch_tanh_in_float64():
    torch.manual_seed(0)
    x = (torch.randn(MIN_NUMEL + 7, dtype=torch.double) * 3).requires_grad_()
    w = torch.randn_like(x)
    got = tanh(x)
    assert got.grad_fn is not None and 'SigmoidTanh' in type(got.grad_fn).__name__
    want = torch.tanh(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-15)
    g_got, = torch.autograd.grad((got * w).sum(), x, create_graph=True)
    g_want, = torch.autograd.grad((want * w).sum(), x, create_graph=True)
    torch.testing.assert_close(g_got, g_want, rtol=0, atol=1e-14)
    # second order, as a gradient penalty would need
    gg_got, = torch.autograd.grad((g_got ** 2).sum(), x)
    gg_want, = torch.autograd.grad((g_want ** 2).sum(), x)
    torch.testing.assert_close(gg_got, gg_want)


def test_float32_error_is_within_the_documented_bound_and_extremes_saturate():
    x = torch.cat([torch.linspace(-20, 20, MIN_NUMEL * 2),
                   torch.tensor([float('inf'), -float('inf'), 0.0, 1e-30])])
    got = tanh(x)
    want = torch.tanh(x.double())
    assert (got.double() - want).abs().max().item() < 2.5e-7
    assert got[-4].item() == 1.0 and got[-3].item() == -1.0
    assert torch.isnan(tanh(torch.full((MIN_NUMEL,), float('nan')))).all()


@pytest.mark.parametrize('x', [torch.randn(8), torch.randn(MIN_NUMEL).bfloat16()],
                         ids=['small', 'bf16'])
def test_small_and_half_precision_tensors_use_torch_tanh(x):
    assert torch.equal(tanh(x), torch.tanh(x))
    assert 'SigmoidTanh' not in type(tanh(x.clone().requires_grad_()).grad_fn).__name__


def test_without_grad_the_identity_runs_without_a_graph():
    x = torch.randn(MIN_NUMEL * 2)
    with torch.no_grad():
        y = tanh(x.requires_grad_())
    assert y.grad_fn is None
    torch.testing.assert_close(y, torch.tanh(x.detach()), rtol=0, atol=2.5e-7)
