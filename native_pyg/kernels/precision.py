r"""Numeric precision of a training step (``training.precision``).

``'fp32'`` runs everything in float32. ``'tf32'`` keeps float32 tensors
and lets CUDA's float32 matrix products, forward and backward, run on
TensorFloat-32 tensor cores (GPUs from Ampere on: inputs rounded to 10
mantissa bits, fp32 accumulation); elsewhere it computes as ``'fp32'``.
``'bf16'`` runs the step's forward pass under :func:`torch.autocast` with
``bfloat16`` on the model's device (CPU or CUDA): matrix products (the
feature projections, the CoMAT generator) take bf16 inputs and accumulate
in fp32, element-wise work and the losses stay in fp32 (the trainer casts
scores up), and parameters and optimiser states stay fp32. It pays off
where the hardware has bf16 matrix units (CUDA GPUs from Ampere on, CPUs
with AVX-512-BF16 or AMX); on a CPU without them (AVX2 only) bf16 products
are emulated and several times slower than fp32. Evaluation always runs in
fp32.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import torch

PRECISIONS = ('fp32', 'tf32', 'bf16')


def _require_known(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"training.precision must be one of {PRECISIONS}, got {precision!r}")


def check_precision(device: torch.device, precision: str) -> None:
    """A one-line :class:`ValueError` for an unknown ``precision``; a
    warning where ``'tf32'`` cannot take effect (not a CUDA device)."""
    _require_known(precision)
    if precision == 'tf32' and device.type != 'cuda':
        warnings.warn(f"training.precision=tf32 uses the tensor cores of CUDA GPUs; on "
                      f"{device.type} the step computes in fp32", stacklevel=3)


def step_autocast(device: torch.device, precision: str = 'fp32', amp: bool = False):
    """The context a training step's forward pass runs in: bf16 autocast on
    ``device`` for ``precision='bf16'`` (or the legacy ``amp`` switch on
    CUDA), else nothing."""
    _require_known(precision)
    if precision == 'bf16' or (amp and device.type == 'cuda'):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def step_matmuls(precision: str = 'fp32') -> Iterator[None]:
    """The context a whole training step (forward and backward) runs in:
    for ``precision='tf32'``, CUDA's float32 matrix products on TF32 tensor
    cores, the previous setting restored on exit so that evaluation and the
    user's own code keep theirs. It sets ``torch.backends.cuda.matmul.allow_tf32``,
    which keeps PyTorch's older and newer (``fp32_precision``, 2.9 on) views
    of the switch in step; where the process already set the newer one
    (reading ``allow_tf32`` then raises), it sets that. The switch does
    nothing on CPUs."""
    if precision != 'tf32':
        yield
        return
    backend = torch.backends.cuda.matmul
    try:
        flag, tf32 = 'allow_tf32', True
        previous = backend.allow_tf32
    except RuntimeError:  # "mix of the legacy and new APIs": keep to the new one
        flag, tf32 = 'fp32_precision', 'tf32'
        previous = backend.fp32_precision
    if previous == tf32:
        yield
        return
    setattr(backend, flag, tf32)
    try:
        yield
    finally:
        setattr(backend, flag, previous)
