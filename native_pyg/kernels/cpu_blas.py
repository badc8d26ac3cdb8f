r"""Large CPU matrix products through numpy's BLAS or oneDNN
(``training.cpu_blas``).

PyTorch's x86 wheels compute float matrix products with Intel's MKL, which
on some AMD CPUs runs well below the vector units' peak, where numpy's
OpenBLAS or oneDNN, PyTorch's other CPU library, get closer to it on a
step's feature projections (``benchmarks/cpu_products.py``, figures in
``docs/benchmarks.md``). With ``training.cpu_blas: numpy`` or ``onednn`` a training step
routes its large 2-D float products on the CPU
(:func:`torch.nn.functional.linear`, :func:`torch.mm`,
:func:`torch.matmul`, ``@``) and the products of their backward pass
through that library,

.. math::
    \mathbf{Y} = \mathbf{A}\mathbf{B}, \qquad
    \frac{\partial L}{\partial \mathbf{A}} = \frac{\partial L}{\partial
    \mathbf{Y}} \mathbf{B}^\top, \qquad
    \frac{\partial L}{\partial \mathbf{B}} = \mathbf{A}^\top
    \frac{\partial L}{\partial \mathbf{Y}}.

``numpy``: each product split over ``torch.get_num_threads()`` Python
threads with a single-threaded BLAS (numpy releases the GIL): by rows of
the result, or, for a weight gradient whose reduction runs over many more
rows than the result has, by the reduction, the partial products then
summed. One BLAS thread per call matters: a multi-threaded OpenBLAS leaves
its workers spinning after each call, and they halve the speed of
PyTorch's next parallel operations on the same cores (the step was no
faster that way). ``onednn``: float32 products by oneDNN's inner-product
primitive (``torch.ops.mkldnn._linear_pointwise``, the kernel
``torch.compile`` emits for CPU linear layers) on PyTorch's own threads;
where the build lacks it, PyTorch's products with one warning.
The math is the same; sums are accumulated in another order, so values
differ from PyTorch's in the last bits. Both compute first derivatives
only (a second backward through them raises). On CUDA tensors, sparse
tensors, small products (under :data:`MIN_MACS` multiply-adds for numpy,
:data:`ONEDNN_MIN_MACS` for oneDNN), other dtypes (oneDNN: float64) and
under autocast nothing changes.
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.overrides import TorchFunctionMode

from native_pyg.kernels.autocast import cpu_autocast_enabled

CPU_BLAS = ('auto', 'torch', 'numpy', 'onednn')
#: products with fewer multiply-adds stay with PyTorch: below about 2e9 the
#: thread hand-off cost more than OpenBLAS saved (measured on the machine above)
MIN_MACS = 1 << 31
#: oneDNN sets up a primitive for each new shape, and a step's shapes change
#: from step to step (its entities, R-GCN's groups): for small products the
#: set-up costs more than oneDNN saves, so products under about 1.3e8
#: multiply-adds stay with PyTorch (the threshold measured in docs/benchmarks.md)
ONEDNN_MIN_MACS = 1 << 27
#: rows of each oneDNN product (:class:`_OneDNNLinear`); fewer go to PyTorch
ONEDNN_ROWS = 2048
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
    @once_differentiable
    def backward(ctx, grad: Tensor):
        a, b = ctx.saved_tensors
        g, an, bn = _array(grad.contiguous()), _array(a), _array(b)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:  # dA = dY B^T
            grad_a = threaded_matmul(g, bn if ctx.transposed else bn.T)
        if ctx.needs_input_grad[1]:  # dB = A^T dY, or (dY^T A) for B^T
            grad_b = threaded_matmul(g.T, an) if ctx.transposed else threaded_matmul(an.T, g)
        return grad_a, grad_b, None


def onednn_inner_product() -> Optional[Callable[..., Tensor]]:
    """oneDNN's dense inner product (``torch.ops.mkldnn._linear_pointwise``),
    or None where this build of PyTorch lacks it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, '_linear_pointwise', None)


def _onednn(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    return onednn_inner_product()(x, weight, bias, 'none', [], '')


def _rows_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``x @ weight.T + bias``: whole blocks of :data:`ONEDNN_ROWS` rows by
    oneDNN, the remaining rows by PyTorch (``addmm``, which no routing mode
    sends back here)."""
    if x.size(0) == ONEDNN_ROWS:
        return _onednn(x, weight, bias)
    full = x.size(0) - x.size(0) % ONEDNN_ROWS
    out = x.new_empty(x.size(0), weight.size(0))
    for start in range(0, full, ONEDNN_ROWS):
        out[start:start + ONEDNN_ROWS] = _onednn(x[start:start + ONEDNN_ROWS], weight, bias)
    if full < x.size(0):
        torch.addmm(x.new_zeros(()) if bias is None else bias, x[full:], weight.t(),
                    out=out[full:])
    return out


def _rows_weight_grad(grad: Tensor, x: Tensor) -> Tensor:
    """``grad.T @ x``, the sum over rows taken a block of :data:`ONEDNN_ROWS`
    rows per oneDNN call (the partial products summed), the remaining rows
    by PyTorch."""
    full = x.size(0) - x.size(0) % ONEDNN_ROWS
    out = x.new_zeros(grad.size(1), x.size(1))
    for start in range(0, full, ONEDNN_ROWS):
        rows = slice(start, start + ONEDNN_ROWS)
        out += _onednn(grad[rows].t(), x[rows].t())
    if full < x.size(0):
        out.addmm_(grad[full:].t(), x[full:])
    return out


class _OneDNNLinear(torch.autograd.Function):
    r""":math:`\mathbf{Y} = \mathbf{X}\mathbf{W}^\top + \mathbf{b}` by oneDNN
    (float32), with :math:`\partial L/\partial \mathbf{X} = \mathbf{G}
    \mathbf{W}`, :math:`\partial L/\partial \mathbf{W} = \mathbf{G}^\top
    \mathbf{X}` and :math:`\partial L/\partial \mathbf{b} = \sum_i
    \mathbf{G}_i` for the upstream gradient :math:`\mathbf{G}`. oneDNN
    sees only blocks of :data:`ONEDNN_ROWS` rows (the rest goes to
    PyTorch), so a layer's three products have one shape each whatever the
    number of rows: oneDNN keeps every primitive it sets up, a new shape
    kept about 1.2 MB, and a step's row counts change from step to step."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        ctx.save_for_backward(x, weight)
        return _rows_linear(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:  # dX = dY W, as a linear layer of weight W^T
            grad_x = _rows_linear(grad, weight.t())
        if ctx.needs_input_grad[1]:  # dW = dY^T X
            grad_w = _rows_weight_grad(grad, x)
        if ctx.needs_input_grad[2]:  # False without a bias
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b


def onednn_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """Differentiable ``x @ weight.T + bias`` of 2-D CPU float32 tensors by
    oneDNN (``bias`` 1-D; oneDNN reads it as contiguous)."""
    return _OneDNNLinear.apply(x, weight, None if bias is None else bias.contiguous())


def onednn_matmul(a: Tensor, b: Tensor) -> Tensor:
    """Differentiable ``a @ b`` of two 2-D CPU float32 tensors by oneDNN."""
    return _OneDNNLinear.apply(a, b.t(), None)


def _routable(a, b, b_transposed: bool, min_macs: int,
              dtypes: Tuple[torch.dtype, ...]) -> bool:
    """Whether ``a @ b`` (``a @ b.T`` with ``b_transposed``; ``a`` 2-D or
    more, as a linear layer's input) goes to the other library."""
    if not (isinstance(a, Tensor) and isinstance(b, Tensor) and a.dim() >= 2 and b.dim() == 2):
        return False
    if a.device.type != 'cpu' or b.device.type != 'cpu' or a.layout != torch.strided \
            or b.layout != torch.strided or a.dtype != b.dtype or a.dtype not in dtypes \
            or cpu_autocast_enabled():
        return False
    n = b.size(0) if b_transposed else b.size(1)
    return a.numel() * n >= min_macs


def numpy_matmul(a: Tensor, b: Tensor) -> Tensor:
    """Differentiable ``a @ b`` of two 2-D CPU float tensors by numpy's BLAS."""
    return _NumpyMatmul.apply(a, b, False)


def numpy_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """Differentiable ``x @ weight.T + bias`` by numpy's BLAS (``x`` 2-D)."""
    y = _NumpyMatmul.apply(x, weight, True)
    return y if bias is None else y + bias


_PRODUCTS = {torch.mm, torch.matmul, Tensor.mm, Tensor.matmul, Tensor.__matmul__}


class RoutedProducts(TorchFunctionMode):
    """Within this mode, large 2-D CPU float products (``linear``, ``mm``,
    ``matmul``, ``@``) and their gradients run through ``linear`` and
    ``matmul`` (:func:`numpy_linear` and :func:`numpy_matmul`, or
    :func:`onednn_linear` and :func:`onednn_matmul`) where they have at
    least ``min_macs`` multiply-adds and a dtype of ``dtypes``; every other
    call is unchanged."""

    def __init__(self, linear: Callable[..., Tensor], matmul: Callable[[Tensor, Tensor], Tensor],
                 min_macs: int, dtypes: Tuple[torch.dtype, ...]) -> None:
        super().__init__()
        self.linear, self.matmul = linear, matmul
        self.min_macs, self.dtypes = min_macs, dtypes

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear:
            x = args[0] if args else kwargs.get('input')
            weight = args[1] if len(args) > 1 else kwargs.get('weight')
            bias = args[2] if len(args) > 2 else kwargs.get('bias')
            if _routable(x, weight, True, self.min_macs, self.dtypes) and (bias is None or (
                    bias.dim() == 1 and bias.dtype == x.dtype and bias.layout == torch.strided)):
                y = self.linear(x.reshape(-1, x.size(-1)), weight, bias)
                return y.view(*x.shape[:-1], y.size(-1))
        elif func in _PRODUCTS and not kwargs and len(args) == 2 \
                and _routable(*args, False, self.min_macs, self.dtypes) \
                and args[0].dim() == 2:
            return self.matmul(*args)
        return func(*args, **kwargs)


class NumpyBLASProducts(RoutedProducts):
    """:class:`RoutedProducts` through numpy's BLAS (float32 and float64)."""

    def __init__(self) -> None:
        super().__init__(numpy_linear, numpy_matmul, MIN_MACS, (torch.float32, torch.float64))


class OneDNNProducts(RoutedProducts):
    """:class:`RoutedProducts` through oneDNN (float32)."""

    def __init__(self) -> None:
        super().__init__(onednn_linear, onednn_matmul, ONEDNN_MIN_MACS, (torch.float32,))


def resolve_cpu_blas(cpu_blas: str = 'auto', deterministic: bool = False,
                     device: Optional[torch.device] = None) -> str:
    """Where a run's CPU products go. ``'auto'`` is ``'onednn'`` for a run
    on the CPU (``device``) with AVX-512 kernels (where oneDNN's float32
    products were faster than MKL's on a step's shapes on the machine
    measured; on another AVX-512 machine they tied, ``docs/benchmarks.md``)
    unless the run is ``deterministic`` or PyTorch's deterministic
    algorithms are on, and ``'torch'`` otherwise: on AVX2 kernels oneDNN
    was no faster than MKL, and deterministic runs keep PyTorch's own
    products, with which the recorded golden runs were made. ``'onednn'`` on a build without it
    is ``'torch'``, with a warning."""
    if cpu_blas not in CPU_BLAS:
        raise ValueError(f"training.cpu_blas must be one of {CPU_BLAS}, got {cpu_blas!r}")
    has_onednn = onednn_inner_product() is not None
    if cpu_blas == 'onednn' and not has_onednn:
        warnings.warn("training.cpu_blas=onednn: this build of PyTorch has no oneDNN inner "
                      "product (torch.ops.mkldnn._linear_pointwise); using PyTorch's products",
                      stacklevel=2)
        return 'torch'
    if cpu_blas != 'auto':
        return cpu_blas
    has_avx512 = torch.backends.cpu.get_cpu_capability().startswith('AVX512')
    on_cpu = device is None or torch.device(device).type == 'cpu'
    deterministic = deterministic or torch.are_deterministic_algorithms_enabled()
    return 'onednn' if has_avx512 and on_cpu and not deterministic and has_onednn else 'torch'


def cpu_products(cpu_blas: str = 'torch'):
    """The context a training step's products run in: :class:`NumpyBLASProducts`
    for ``cpu_blas='numpy'``, :class:`OneDNNProducts` for ``'onednn'``, else
    nothing (``'auto'`` and a build without oneDNN: see
    :func:`resolve_cpu_blas`, which a trainer calls once)."""
    cpu_blas = resolve_cpu_blas(cpu_blas)
    if cpu_blas == 'numpy':
        return NumpyBLASProducts()
    if cpu_blas == 'onednn':
        return OneDNNProducts()
    return contextlib.nullcontext()
