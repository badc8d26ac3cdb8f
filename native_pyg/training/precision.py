r"""Numeric precision of a training step (``training.precision``).

``'fp32'`` runs everything in float32. ``'bf16'`` runs the step's forward
pass under :func:`torch.autocast` with ``bfloat16`` on the model's device
(CPU or CUDA): matrix products (the feature projections, the CoMAT
generator) take bf16 inputs and accumulate in fp32, element-wise work and
the losses stay in fp32 (the trainer casts scores up), and parameters and
optimiser states stay fp32. It pays off where the hardware has bf16 matrix
units (CUDA GPUs from Ampere on, CPUs with AVX-512-BF16 or AMX); on a CPU
without them (AVX2 only) bf16 products are emulated and several times
slower than fp32.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ('fp32', 'bf16')


def step_autocast(device: torch.device, precision: str = 'fp32', amp: bool = False):
    """The context a training step's forward pass runs in: bf16 autocast on
    ``device`` for ``precision='bf16'`` (or the legacy ``amp`` switch on
    CUDA), else nothing."""
    if precision not in PRECISIONS:
        raise ValueError(f"training.precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == 'bf16' or (amp and device.type == 'cuda'):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
