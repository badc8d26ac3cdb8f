r"""Large CPU matrix products through numpy's BLAS (``training.cpu_blas``).

PyTorch's x86 wheels compute float matrix products with Intel's MKL, which
on AMD CPUs runs well below the AVX2 peak: on the 2-core EPYC of
``docs/benchmarks.md`` MKL reached 85-107 GFLOP/s on a step's
``15,000 x 4,096 @ 4,096 x 500`` feature projection, numpy's OpenBLAS
141-161 GFLOP/s on the same product. With ``training.cpu_blas: numpy`` a
training step routes every large 2-D float product on the CPU
(:func:`torch.nn.functional.linear`, :func:`torch.mm`,
:func:`torch.matmul`, ``@``) and the products of its backward pass through
numpy,

.. math::
    \mathbf{Y} = \mathbf{A}\mathbf{B}, \qquad
    \frac{\partial L}{\partial \mathbf{A}} = \frac{\partial L}{\partial
    \mathbf{Y}} \mathbf{B}^\top, \qquad
    \frac{\partial L}{\partial \mathbf{B}} = \mathbf{A}^\top
    \frac{\partial L}{\partial \mathbf{Y}},

each product split over ``torch.get_num_threads()`` Python threads with a
single-threaded BLAS (numpy releases the GIL): by rows of the result, or,
for a weight gradient whose reduction runs over many more rows than the
result has, by the reduction, the partial products then summed. One BLAS
thread per call matters: a multi-threaded OpenBLAS leaves its workers
spinning after each call, and they halve the speed of PyTorch's next
parallel operations on the same cores (the step was no faster that way).
The math is the same; sums are accumulated in another order, so values
differ from PyTorch's in the last bits. On CUDA tensors, small products
(under :data:`MIN_MACS` multiply-adds), other dtypes and under autocast
nothing changes.
"""
from __future__ import annotations

import contextlib
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

CPU_BLAS = ('torch', 'numpy')
#: products with fewer multiply-adds stay with PyTorch: below about 2e9 the
#: thread hand-off cost more than OpenBLAS saved (measured on the machine above)
MIN_MACS = 1 << 31
_POOLS: Dict[Tuple[int, int], ThreadPoolExecutor] = {}


@functools.lru_cache(maxsize=None)
def _blas_controller():
    from threadpoolctl import ThreadpoolController  # finds the loaded BLAS libraries once
    return ThreadpoolController()


def _single_threaded_blas():
    """A context in which numpy's BLAS uses one thread (threadpoolctl)."""
    return _blas_controller().limit(limits=1, user_api='blas')


def _array(x: Tensor) -> np.ndarray:
    return x.detach().resolve_conj().resolve_neg().numpy()


def threaded_matmul(a: np.ndarray, b: np.ndarray, threads: Optional[int] = None) -> Tensor:
    """``a @ b`` of two 2-D arrays as a tensor, split over ``threads``
    (default ``torch.get_num_threads()``) single-threaded BLAS calls running
    at once: by the rows of ``a``, or by its columns (the reduction) with the
    partial products summed where ``a`` is much wider than tall."""
    threads = threads or torch.get_num_threads()
    by_reduction = a.shape[1] > 4 * a.shape[0]
    size = a.shape[1] if by_reduction else a.shape[0]
    bounds = np.linspace(0, size, min(threads, max(size, 1)) + 1).astype(int)
    with _single_threaded_blas():
        if len(bounds) <= 2:
            return torch.from_numpy(np.matmul(a, b))
        pool = _POOLS.get((os.getpid(), threads))  # a forked child has none of its parent's threads
        if pool is None:
            pool = _POOLS[(os.getpid(), threads)] = ThreadPoolExecutor(threads, 'native_pyg_blas')
        parts = zip(bounds[:-1], bounds[1:])
        if by_reduction:
            jobs = [pool.submit(np.matmul, a[:, i:j], b[i:j]) for i, j in parts]
            out = jobs[0].result()
            for job in jobs[1:]:
                out += job.result()
        else:
            out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
            jobs = [pool.submit(np.matmul, a[i:j], b, out=out[i:j]) for i, j in parts]
            for job in jobs:
                job.result()
    return torch.from_numpy(out)


class _NumpyMatmul(torch.autograd.Function):
    """``a @ b`` (``a @ b.T`` with ``transposed``) with numpy's BLAS, forward
    and backward."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, transposed: bool) -> Tensor:
        ctx.save_for_backward(a, b)
        ctx.transposed = transposed
        bn = _array(b)
        return threaded_matmul(_array(a), bn.T if transposed else bn)

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b = ctx.saved_tensors
        g, an, bn = _array(grad.contiguous()), _array(a), _array(b)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:  # dA = dY B^T
            grad_a = threaded_matmul(g, bn if ctx.transposed else bn.T)
        if ctx.needs_input_grad[1]:  # dB = A^T dY, or (dY^T A) for B^T
            grad_b = threaded_matmul(g.T, an) if ctx.transposed else threaded_matmul(an.T, g)
        return grad_a, grad_b, None


def _cpu_autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled('cpu')
    except TypeError:  # PyTorch before 2.4
        return torch.is_autocast_cpu_enabled()


def _routable(a, b, b_transposed: bool = False) -> bool:
    if not (isinstance(a, Tensor) and isinstance(b, Tensor) and a.dim() == 2 and b.dim() == 2):
        return False
    if a.device.type != 'cpu' or b.device.type != 'cpu' or a.dtype != b.dtype \
            or a.dtype not in (torch.float32, torch.float64) or _cpu_autocast_on():
        return False
    n = b.size(0) if b_transposed else b.size(1)
    return a.size(0) * a.size(1) * n >= MIN_MACS


def numpy_matmul(a: Tensor, b: Tensor) -> Tensor:
    """Differentiable ``a @ b`` of two 2-D CPU float tensors by numpy's BLAS."""
    return _NumpyMatmul.apply(a, b, False)


def numpy_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """Differentiable ``x @ weight.T + bias`` by numpy's BLAS (``x`` 2-D)."""
    y = _NumpyMatmul.apply(x, weight, True)
    return y if bias is None else y + bias


_PRODUCTS = {torch.mm, torch.matmul, Tensor.mm, Tensor.matmul, Tensor.__matmul__}


class NumpyBLASProducts(TorchFunctionMode):
    """Within this mode, large 2-D CPU float products (``linear``, ``mm``,
    ``matmul``, ``@``) and their gradients run through :func:`numpy_linear`
    and :func:`numpy_matmul`; every other call is unchanged."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear:
            x, weight = args[0], args[1] if len(args) > 1 else kwargs['weight']
            bias = args[2] if len(args) > 2 else kwargs.get('bias')
            if isinstance(x, Tensor) and x.dim() >= 2:
                rows = x.reshape(-1, x.size(-1))
                if _routable(rows, weight, True):
                    y = numpy_linear(rows, weight, bias)
                    return y.view(*x.shape[:-1], y.size(-1))
        elif func in _PRODUCTS and not kwargs and len(args) == 2 and _routable(*args):
            return numpy_matmul(*args)
        return func(*args, **kwargs)


def cpu_products(cpu_blas: str = 'torch'):
    """The context a training step's products run in: :class:`NumpyBLASProducts`
    for ``cpu_blas='numpy'``, else nothing."""
    if cpu_blas not in CPU_BLAS:
        raise ValueError(f"training.cpu_blas must be one of {CPU_BLAS}, got {cpu_blas!r}")
    return NumpyBLASProducts() if cpu_blas == 'numpy' else contextlib.nullcontext()
