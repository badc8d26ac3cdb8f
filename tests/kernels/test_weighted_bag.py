import pytest
import torch
import torch.nn.functional as F

from native_pyg.kernels.weighted_bag import weighted_bag


def _grads(fn, x, w, upstream):
    out = fn()
    wanted = [t for t in (x, w) if t.requires_grad]
    return [out.detach(), *torch.autograd.grad(out, wanted, upstream)]


@pytest.mark.parametrize('needs', ['both', 'x', 'weights'])
def test_bags_equal_embedding_bag_in_values_and_gradients(needs):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 7, dtype=torch.float64, generator=g)
    # 12 bags, some empty (repeated offsets, a trailing empty bag); rows repeat, and
    # rows 25..29 are never read (their gradient is zero)
    indices = torch.randint(0, 25, (50,), generator=g)
    offsets = torch.tensor([0, 3, 3, 10, 11, 20, 20, 20, 31, 40, 49, 50])
    w = torch.rand(50, dtype=torch.float64, generator=g)
    x.requires_grad_(needs in ('both', 'x'))
    w.requires_grad_(needs in ('both', 'weights'))
    upstream = torch.randn(12, 7, dtype=torch.float64, generator=g)
    ref = _grads(lambda: F.embedding_bag(indices, x, offsets, mode='sum', per_sample_weights=w),
                 x, w, upstream)
    got = _grads(lambda: weighted_bag(x, indices, w, offsets), x, w, upstream)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    if x.requires_grad:
        assert got[1][25:].abs().sum() == 0
    assert torch.autograd.gradcheck(
        lambda a, b: weighted_bag(a, indices, b, offsets),
        (x.detach().requires_grad_(), w.detach().requires_grad_()))


def test_fixed_size_bags_from_2d_indices():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 4, dtype=torch.float64, generator=g, requires_grad=True)
    indices = torch.randint(0, 9, (6, 3), generator=g)
    w = torch.rand(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    upstream = torch.randn(6, 4, dtype=torch.float64, generator=g)
    ref = _grads(lambda: F.embedding_bag(indices, x, mode='sum', per_sample_weights=w),
                 x, w, upstream)
    got = _grads(lambda: weighted_bag(x, indices, w), x, w, upstream)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match='offsets need 1-D indices'):
        weighted_bag(x, indices, w, torch.tensor([0]))


def test_the_input_gradient_is_computed_as_a_bag(monkeypatch):
    # the custom backward is what runs on CPUs (not PyTorch's entry-by-entry one)
    calls = []
    real = F.embedding_bag
    monkeypatch.setattr(F, 'embedding_bag', lambda *a, **k: calls.append(k) or real(*a, **k))
    x = torch.randn(5, 3, requires_grad=True)
    weighted_bag(x, torch.tensor([0, 1, 1, 4]), torch.ones(4), torch.tensor([0, 2])).sum().backward()
    assert [k.get('include_last_offset', False) for k in calls] == [False, True]
