import numpy as np
import pytest
import torch
import torch.nn.functional as F

from native_pyg.datasets import SyntheticMMKG
from native_pyg.pipeline import build_model
from native_pyg.training import RunConfig, Trainer
from native_pyg.training import cpu_blas
from native_pyg.training.cpu_blas import (NumpyBLASProducts, numpy_linear, numpy_matmul,
                                          threaded_matmul)
from tests.conftest import small_run


@pytest.mark.parametrize('shape', [(37, 11, 5),  # split by rows
                                   (3, 40, 6),  # split by the reduction (wide a)
                                   (1, 9, 4)])  # one row: no split
@pytest.mark.parametrize('threads', [1, 2, 3])
def test_threaded_products_equal_numpy_on_every_split(shape, threads):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    out = threaded_matmul(a, b, threads)
    assert out.shape == (m, n) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-12, atol=1e-12)
    # transposed views (a weight gradient's A^T) are read in place
    np.testing.assert_allclose(threaded_matmul(a.T.copy().T, b, threads).numpy(), a @ b,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('shape', [(50, 7, 9), (4, 60, 3)])
def test_numpy_products_equal_torch_in_values_and_gradients(shape):
    m, k, n = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(m, k, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(n, k, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(n, dtype=torch.float64, generator=g, requires_grad=True)
    upstream = torch.randn(m, n, dtype=torch.float64, generator=g)

    def grads(fn):
        out = fn()
        return [out.detach(), *torch.autograd.grad(out, (x, w, bias), upstream,
                                                   allow_unused=True)]

    ref = grads(lambda: F.linear(x, w, bias))
    for got in (grads(lambda: numpy_linear(x, w, bias)),
                grads(lambda: numpy_matmul(x, w.t()) + bias)):
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, b: numpy_matmul(a, b), (x, w.t().detach().requires_grad_()))


def test_the_mode_routes_large_float_cpu_products_and_nothing_else(monkeypatch):
    calls = []
    real = cpu_blas.threaded_matmul
    monkeypatch.setattr(cpu_blas, 'threaded_matmul',
                        lambda a, b, threads=None: calls.append(a.shape) or real(a, b, threads))
    monkeypatch.setattr(cpu_blas, 'MIN_MACS', 1000)
    x, w = torch.randn(40, 30, requires_grad=True), torch.randn(20, 30, requires_grad=True)
    lin = torch.nn.Linear(30, 20)
    with NumpyBLASProducts():
        outs = [F.linear(x, w), lin(x), x @ w.t(), torch.mm(x, w.t()), x.matmul(w.t()),
                lin(x.view(4, 10, 30))]
        assert len(calls) == 6 and all('_NumpyMatmul' in type(o.grad_fn).__name__
                                       or 'View' in type(o.grad_fn).__name__ for o in outs)
        outs[0].sum().backward()  # the backward's two products go the same way
        assert len(calls) == 8
        calls.clear()
        small = torch.randn(5, 6) @ torch.randn(6, 7)  # under MIN_MACS
        ints = torch.ones(40, 30, dtype=torch.long) @ torch.ones(30, 20, dtype=torch.long)
        batched = torch.randn(3, 40, 30) @ torch.randn(30, 20)  # not 2-D by 2-D
        with torch.autocast('cpu', dtype=torch.bfloat16):
            lowered = F.linear(x, w)
        assert not calls and lowered.dtype == torch.bfloat16
    torch.testing.assert_close(outs[1], F.linear(x, lin.weight, lin.bias))
    torch.testing.assert_close(outs[5], lin(x.view(4, 10, 30)))
    assert small.shape == (5, 7) and ints.dtype == torch.long and batched.shape == (3, 40, 20)


def test_numpy_blas_keeps_the_callers_blas_threads():
    from threadpoolctl import threadpool_info
    before = [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']
    threaded_matmul(np.ones((64, 8)), np.ones((8, 4)), 2)
    assert [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'] == before


def test_a_step_with_numpy_blas_equals_the_torch_step(monkeypatch):
    data = SyntheticMMKG(seed=1, num_entities=300, num_relations=4)[0]
    monkeypatch.setattr(cpu_blas, 'MIN_MACS', 1)  # route every product of the small model
    routed = []
    real = cpu_blas.threaded_matmul
    monkeypatch.setattr(cpu_blas, 'threaded_matmul',
                        lambda a, b, threads=None: routed.append(1) or real(a, b, threads))
    trainers = {}
    for blas in ('torch', 'numpy'):
        run = small_run(cpu_blas=blas)
        torch.manual_seed(0)
        trainers[blas] = Trainer(build_model(data, run), data, run)
    batch = next(iter(trainers['torch'].steps))
    out = {}
    for blas, trainer in trainers.items():
        torch.manual_seed(1)  # the same generator noise for both
        out[blas] = trainer.train_step(batch)
    assert routed  # the numpy trainer's projections (and generator) went through numpy
    for key in ('loss', 'kgc_loss', 'g_loss'):
        assert out['numpy'][key] == pytest.approx(out['torch'][key], rel=1e-5)
    for (name, a), b in zip(trainers['torch'].model.state_dict().items(),
                            trainers['numpy'].model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)


def test_unknown_cpu_blas_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"training\.cpu_blas: must be one of torch, numpy, got 'mkl'"):
        RunConfig().override(['training.cpu_blas=mkl'])


def test_a_resumed_run_may_change_where_its_products_run():
    from native_pyg.training.runs import config_changes
    saved = RunConfig().to_dict()
    del saved['training']['cpu_blas']  # a checkpoint written before the key: 'torch'
    new = RunConfig().override(['training.cpu_blas=numpy']).to_dict()
    assert [k for k, _, _ in config_changes(saved, new, 'last.pt')] == ['training.cpu_blas']
