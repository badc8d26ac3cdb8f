r"""The runtime context: how the model's tensors are computed, set in one
place and entered explicitly around the work it governs.

A :class:`Runtime` carries a run's numeric settings:

- ``precision`` (``training.precision``, :mod:`~native_pyg.kernels.precision`):
  bf16 autocast of the forward pass, or CUDA's TF32 products for a whole step;
- ``cpu_blas`` (``training.cpu_blas``, :mod:`~native_pyg.kernels.cpu_blas`):
  where large CPU matrix products run;
- ``compile`` (``training.compile``, ``--compile``): RotatE distances by
  :func:`torch.compile` kernels (:mod:`~native_pyg.kernels.distance_kernels`).

The trainer enters ``with runtime:`` around a step's forward passes (and
:meth:`Runtime.step_products` around the whole step), every evaluator
around its scoring. Kernels deep in the model read the context they run in
through :func:`current_runtime`; outside any context it is ``Runtime()``:
fp32, PyTorch's own products, eager distances.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import ContextManager, List, Optional, Tuple

import torch

from native_pyg.kernels.cpu_blas import cpu_products
from native_pyg.kernels.precision import step_autocast, step_matmuls


@dataclass(frozen=True)
class Runtime:
    r"""How a model's computations run: entered as a context manager
    (``with runtime: ...``), it applies ``precision``'s autocast on
    ``device``, routes CPU products as ``cpu_blas`` says, and makes
    :func:`current_runtime` return it, so that the distance kernels compile
    when ``compile`` is set. Contexts nest; leaving one restores the outer
    runtime.

    Args:
        device (torch.device, optional): The device the work runs on (for
            autocast). (default: :obj:`cpu`)
        precision (str, optional): ``'fp32'``, ``'tf32'`` or ``'bf16'``.
            (default: :obj:`'fp32'`)
        amp (bool, optional): The legacy switch: bf16 autocast on CUDA.
            (default: :obj:`False`)
        cpu_blas (str, optional): ``'torch'``, ``'numpy'`` or ``'onednn'``,
            as resolved by :func:`~native_pyg.kernels.cpu_blas.resolve_cpu_blas`.
            (default: :obj:`'torch'`)
        compile (bool, optional): RotatE distances by compiled kernels.
            (default: :obj:`False`)
    """
    device: torch.device = torch.device('cpu')
    precision: str = 'fp32'
    amp: bool = False
    cpu_blas: str = 'torch'
    compile: bool = False

    def step_products(self) -> ContextManager[None]:
        """The context of a whole training step, forward and backward: CUDA's
        float32 products on TF32 tensor cores for ``precision='tf32'``
        (restored on exit), else nothing."""
        return step_matmuls(self.precision)

    def __enter__(self) -> 'Runtime':
        stack = contextlib.ExitStack()
        stack.enter_context(step_autocast(torch.device(self.device), self.precision, self.amp))
        stack.enter_context(cpu_products(self.cpu_blas))
        _entered().append((self, stack))
        return self

    def __exit__(self, *exc) -> Optional[bool]:
        _, stack = _entered().pop()
        return stack.__exit__(*exc)


#: the runtime outside every context
_DEFAULT = Runtime()
#: per thread, each entered runtime with the exit stack of its contexts, innermost last
#: (a Runtime is frozen and may be entered by several nested ``with`` blocks)
_OPEN = threading.local()


def _entered() -> List[Tuple[Runtime, contextlib.ExitStack]]:
    if not hasattr(_OPEN, 'entered'):
        _OPEN.entered = []
    return _OPEN.entered


def current_runtime() -> Runtime:
    """The :class:`Runtime` the calling code runs in (``Runtime()`` outside
    every context)."""
    entered = _entered()
    return entered[-1][0] if entered else _DEFAULT
