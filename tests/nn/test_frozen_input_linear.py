"""Raw float16 rows through a projection's first layer: the plain layer's
values and gradients, with the rows kept in float16 for the backward pass."""
import pytest
import torch

from native_pyg.nn.frozen_input_linear import frozen_input_linear
from native_pyg.nn.projections import ModalityProjections


def _grads(fn, params):
    for p in params:
        p.grad = None
    out = fn()
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), [p.grad.clone() for p in params]


@pytest.mark.parametrize('block_rows', [7, 64, 1000])
def test_blocks_give_the_plain_layer_up_to_float32_rounding(block_rows):
    torch.manual_seed(0)
    x = torch.randn(150, 33).half()
    layer = torch.nn.Linear(33, 12)
    params = [layer.weight, layer.bias]
    plain, plain_grads = _grads(lambda: layer(x.float()), params)
    frozen, frozen_grads = _grads(
        lambda: frozen_input_linear(x, layer.weight, layer.bias, block_rows), params)
    assert torch.allclose(frozen, plain, rtol=1e-5, atol=1e-6)
    for a, b in zip(frozen_grads, plain_grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_the_backward_pass_keeps_the_rows_as_given():
    x = torch.randn(300, 40).half()
    layer = torch.nn.Linear(40, 8)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        frozen_input_linear(x, layer.weight, layer.bias, 64)
    assert any(t.dtype == torch.float16 and t.shape == x.shape for t in saved)
    assert not any(t.dtype == torch.float32 and t.size(0) == x.size(0) for t in saved)
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x.float())  # the plain layer keeps a float32 copy
    assert any(t.dtype == torch.float32 and t.shape == x.shape for t in saved)


def test_bad_arguments_are_one_line():
    w = torch.randn(4, 3)
    with pytest.raises(ValueError, match='2-D'):
        frozen_input_linear(torch.randn(2, 2, 3), w)
    with pytest.raises(ValueError, match='block_rows'):
        frozen_input_linear(torch.randn(2, 3), w, block_rows=0)
    with pytest.raises(ValueError, match='gradient'):
        frozen_input_linear(torch.randn(2, 3, requires_grad=True), w)


def test_projection_of_float16_rows(monkeypatch):
    """One block: exactly the float32 path; more: the blocked layer, the
    same values and gradients up to rounding."""
    torch.manual_seed(1)
    proj = ModalityProjections({'image': 64, 'text': 16}, 10)
    params = list(proj.parameters())
    x = torch.randn(500, 64).half()
    ref, ref_grads = _grads(lambda: proj.encode('image', x.float()), params[:4])
    one, one_grads = _grads(lambda: proj.encode('image', x), params[:4])
    assert torch.equal(one, ref)
    assert all(torch.equal(a, b) for a, b in zip(one_grads, ref_grads))
    import native_pyg.nn.projections as projections
    monkeypatch.setattr(projections, 'PROJECT_BYTES', 64 * 4 * 100)  # blocks of 100 rows
    blocked, blocked_grads = _grads(lambda: proj.encode('image', x), params[:4])
    assert torch.allclose(blocked, ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(blocked_grads, ref_grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        proj.encode('image', x)
    assert not any(t.dtype == torch.float32 and t.shape == x.shape for t in saved)
    with torch.no_grad():  # without gradient: cast, then the plain layers
        assert torch.equal(proj.encode('image', x), ref)
