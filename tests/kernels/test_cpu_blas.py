import numpy as np
import pytest
import torch
import torch.nn.functional as F

from native_pyg.datasets import SyntheticMMKG
from native_pyg.pipeline import build_model
from native_pyg.training import RunConfig, Trainer
from native_pyg.kernels import cpu_blas
from native_pyg.kernels.cpu_blas import (NumpyBLASProducts, OneDNNProducts, numpy_linear,
                                          numpy_matmul, onednn_inner_product, onednn_linear,
                                          onednn_matmul, threaded_matmul)
from tests.conftest import small_run

needs_onednn = pytest.mark.skipif(onednn_inner_product() is None,
                                  reason='this build of PyTorch has no oneDNN inner product')


def count_onednn_calls(monkeypatch) -> list:
    """The first argument's shape of each oneDNN product from now on."""
    calls, real = [], onednn_inner_product()

    def counted(*args):
        calls.append(tuple(args[0].shape))
        return real(*args)

    monkeypatch.setattr(cpu_blas, 'onednn_inner_product', lambda: counted)
    return calls


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


def assert_same_as_linear(linear, matmul, x, w, bias, upstream, rtol, atol):
    """``linear(x, w, bias)`` and ``matmul(x, w.T) + bias`` equal ``F.linear``
    in values and in the gradients of ``x``, ``w`` and ``bias``."""
    def values_and_grads(fn):
        out = fn()
        return [out.detach(), *torch.autograd.grad(out, (x, w, bias), upstream,
                                                   allow_unused=True)]

    ref = values_and_grads(lambda: F.linear(x, w, bias))
    for got in (values_and_grads(lambda: linear(x, w, bias)),
                values_and_grads(lambda: matmul(x, w.t()) + bias)):
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize('shape', [(50, 7, 9), (4, 60, 3)])
def test_numpy_products_equal_torch_in_values_and_gradients(shape):
    m, k, n = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(m, k, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(n, k, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(n, dtype=torch.float64, generator=g, requires_grad=True)
    upstream = torch.randn(m, n, dtype=torch.float64, generator=g)
    assert_same_as_linear(numpy_linear, numpy_matmul, x, w, bias, upstream,
                          rtol=1e-10, atol=1e-12)
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


@pytest.mark.parametrize('blas', ['numpy', pytest.param('onednn', marks=needs_onednn)])
def test_a_step_with_routed_products_equals_the_torch_step(monkeypatch, blas):
    data = SyntheticMMKG(seed=1, num_entities=300, num_relations=4)[0]
    monkeypatch.setattr(cpu_blas, 'MIN_MACS', 1)  # route every product of the small model
    monkeypatch.setattr(cpu_blas, 'ONEDNN_MIN_MACS', 1)
    monkeypatch.setattr(cpu_blas, 'ONEDNN_ROWS', 8)  # blocks of 8 rows and the rest
    if blas == 'numpy':
        routed, real = [], cpu_blas.threaded_matmul
        monkeypatch.setattr(cpu_blas, 'threaded_matmul',
                            lambda *args: routed.append(1) or real(*args))
    else:
        routed = count_onednn_calls(monkeypatch)
    trainers = {}
    for name in ('torch', blas):
        run = small_run(cpu_blas=name)
        torch.manual_seed(0)
        trainers[name] = Trainer(build_model(data, run), data, run)
    batch = next(iter(trainers['torch'].steps))
    out = {}
    for name, trainer in trainers.items():
        torch.manual_seed(1)  # the same generator noise for both
        out[name] = trainer.train_step(batch)
    assert routed  # the routed trainer's projections (and generator) went that way
    for key in ('loss', 'kgc_loss', 'g_loss'):
        assert out[blas][key] == pytest.approx(out['torch'][key], rel=1e-5)
    for (name, a), b in zip(trainers['torch'].model.state_dict().items(),
                            trainers[blas].model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)


@needs_onednn
@pytest.mark.parametrize('shape', [(50, 7, 9), (4, 60, 3), (300, 128, 64), (32, 5, 6)])
def test_onednn_products_equal_torch_in_values_and_gradients(shape, monkeypatch):
    # blocks of 16 rows with 2 and 12 left over, none (4 rows), exactly 2 blocks
    monkeypatch.setattr(cpu_blas, 'ONEDNN_ROWS', 16)
    m, k, n = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(k, m, generator=g).t().requires_grad_()  # a transposed view is read in place
    w = torch.randn(n, k, generator=g, requires_grad=True)
    bias = torch.randn(n, generator=g, requires_grad=True)
    upstream = torch.randn(m, n, generator=g)
    assert_same_as_linear(onednn_linear, onednn_matmul, x, w, bias, upstream,
                          rtol=1e-4, atol=1e-4)  # float32 sums, another order
    no_bias = torch.autograd.grad(onednn_linear(x, w), (x, w), upstream)
    for a, b in zip(no_bias, torch.autograd.grad(F.linear(x, w), (x, w), upstream)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@needs_onednn
def test_the_onednn_mode_routes_large_float32_cpu_products_and_nothing_else(monkeypatch):
    calls = count_onednn_calls(monkeypatch)
    monkeypatch.setattr(cpu_blas, 'ONEDNN_MIN_MACS', 1000)
    monkeypatch.setattr(cpu_blas, 'ONEDNN_ROWS', 40)  # one block per product
    x, w = torch.randn(40, 30, requires_grad=True), torch.randn(20, 30, requires_grad=True)
    lin = torch.nn.Linear(30, 20)
    with OneDNNProducts():
        outs = [F.linear(x, w), lin(x), x @ w.t(), torch.mm(x, w.t()), lin(x.view(4, 10, 30))]
        assert len(calls) == 5
        outs[1].sum().backward()  # the backward's two products go the same way
        assert len(calls) == 7 and lin.bias.grad is not None
        calls.clear()
        small = torch.randn(5, 6) @ torch.randn(6, 7)  # under ONEDNN_MIN_MACS
        doubles = x.double() @ w.double().t()  # oneDNN has no float64 kernels
        with torch.autocast('cpu', dtype=torch.bfloat16):
            lowered = F.linear(x, w)
        assert not calls and lowered.dtype == torch.bfloat16 and doubles.dtype == torch.float64
    for out in outs[:4]:
        torch.testing.assert_close(out.reshape(40, 20), F.linear(x, w) if out is not outs[1]
                                   else lin(x))
    torch.testing.assert_close(outs[4], lin(x.view(4, 10, 30)))
    torch.testing.assert_close(lin.bias.grad, torch.full((20,), 40.0))
    assert small.shape == (5, 7)


def test_onednn_missing_from_the_build_is_one_warning_and_torch_products(monkeypatch):
    monkeypatch.setattr(cpu_blas, 'onednn_inner_product', lambda: None)
    with pytest.warns(UserWarning, match='cpu_blas=onednn: this build of PyTorch has no oneDNN'):
        assert cpu_blas.resolve_cpu_blas('onednn') == 'torch'
    data = SyntheticMMKG(seed=1, num_entities=50, num_relations=2)[0]
    run = small_run(cpu_blas='onednn')
    with pytest.warns(UserWarning, match='no oneDNN') as caught:
        trainer = Trainer(build_model(data, run), data, run)
    assert trainer.runtime.cpu_blas == 'torch' and len([w for w in caught if 'oneDNN' in str(w.message)]) == 1
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # once per trainer, not once per step
        trainer.train_step(next(iter(trainer.steps)))


@needs_onednn
def test_odd_biases_sparse_and_keyword_calls_stay_correct_in_the_onednn_mode(monkeypatch):
    calls = count_onednn_calls(monkeypatch)
    monkeypatch.setattr(cpu_blas, 'ONEDNN_MIN_MACS', 1000)
    monkeypatch.setattr(cpu_blas, 'ONEDNN_ROWS', 40)
    x, w = torch.randn(40, 30), torch.randn(20, 30)
    strided, expanded = torch.randn(40)[::2], torch.ones(1).expand(20)
    wide_bias = torch.randn(1, 20)
    sparse = torch.randn(40, 30).relu().to_sparse()
    with OneDNNProducts():
        got = [F.linear(x, w, strided), F.linear(x, w, expanded), F.linear(x, w, wide_bias),
               F.linear(input=x, weight=w), torch.mm(sparse, w.t())]
    assert len(calls) == 3  # strided and expanded biases go (made contiguous), [1, 20] does not
    want = [F.linear(x, w, strided), F.linear(x, w, expanded), F.linear(x, w, wide_bias),
            F.linear(x, w), torch.mm(sparse, w.t())]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('mode', [NumpyBLASProducts, pytest.param(OneDNNProducts,
                                                                  marks=needs_onednn)])
def test_a_second_derivative_through_a_routed_product_raises(monkeypatch, mode):
    # both compute first derivatives only: a second backward must not be silently wrong
    monkeypatch.setattr(cpu_blas, 'MIN_MACS', 1)
    monkeypatch.setattr(cpu_blas, 'ONEDNN_MIN_MACS', 1)
    x, w = torch.randn(8, 6, requires_grad=True), torch.randn(4, 6, requires_grad=True)
    with mode():
        out = F.linear(x, w).pow(2).sum()
    (grad_x,) = torch.autograd.grad(out, x, create_graph=True)
    with pytest.raises(RuntimeError, match='once_differentiable'):
        grad_x.sum().backward()


def test_unknown_cpu_blas_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"training\.cpu_blas: must be one of auto, torch, "
                                         r"numpy, onednn, got 'mkl'"):
        RunConfig().override(['training.cpu_blas=mkl'])


def test_a_resumed_run_may_change_where_its_products_run():
    from native_pyg.training.runs import config_changes
    saved = RunConfig().to_dict()
    del saved['training']['cpu_blas']  # a checkpoint written before the key: 'torch'
    new = RunConfig().override(['training.cpu_blas=numpy']).to_dict()
    assert [k for k, _, _ in config_changes(saved, new, 'last.pt')] == ['training.cpu_blas']


@pytest.mark.parametrize('capability,deterministic,device,has_op,want', [
    pytest.param('AVX512', False, 'cpu', True, 'onednn', marks=needs_onednn),
    ('AVX512', True, 'cpu', True, 'torch'),  # deterministic runs keep PyTorch's products
    ('AVX512', False, 'cuda', True, 'torch'),  # GPU runs: no mode around every op
    ('AVX2', False, 'cpu', True, 'torch'),
    ('AVX512', False, 'cpu', False, 'torch')])
def test_auto_takes_onednn_for_cpu_runs_on_avx512_cpus_only(monkeypatch, capability,
                                                            deterministic, device, has_op, want):
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: capability)
    if not has_op:
        monkeypatch.setattr(cpu_blas, 'onednn_inner_product', lambda: None)
    assert cpu_blas.resolve_cpu_blas('auto', deterministic, torch.device(device)) == want
    for explicit in ('torch', 'numpy') + (('onednn',) if has_op else ()):
        assert cpu_blas.resolve_cpu_blas(explicit, deterministic) == explicit
    if device != 'cpu':
        return
    data = SyntheticMMKG(seed=1, num_entities=50, num_relations=2)[0]
    run = small_run()
    assert run.training.cpu_blas == 'auto'  # the default
    run.training.deterministic = deterministic
    # (the trainer sets nothing for the process: this one keeps its threads and algorithms)
    assert Trainer(build_model(data, run), data, run).runtime.cpu_blas == want


def test_auto_respects_deterministic_algorithms_set_outside_the_config(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: 'AVX512')
    monkeypatch.setattr(torch, 'are_deterministic_algorithms_enabled', lambda: True)
    assert cpu_blas.resolve_cpu_blas('auto') == 'torch'


@needs_onednn
def test_onednn_sees_one_shape_per_product_whatever_the_number_of_rows(monkeypatch):
    """oneDNN keeps a primitive per shape it has seen: a step's row counts
    vary, so it is handed blocks of ONEDNN_ROWS rows only (the rest goes to
    PyTorch), and products of many row counts leave three shapes."""
    calls = count_onednn_calls(monkeypatch)
    monkeypatch.setattr(cpu_blas, 'ONEDNN_ROWS', 16)
    w = torch.randn(6, 5, requires_grad=True)
    for m in (16, 37, 50, 64, 9):
        x = torch.randn(m, 5, requires_grad=True)
        onednn_linear(x, w).sum().backward()
    assert set(calls) == {(16, 5), (16, 6), (6, 16)}  # forward, input and weight gradients
    assert len(calls) == 3 * (1 + 2 + 3 + 4)  # whole blocks only; 9 rows never reach it
