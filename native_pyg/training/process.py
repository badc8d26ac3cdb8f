"""What a run sets for the whole process or picks for it: the device it
runs on and deterministic algorithms."""
from __future__ import annotations

import os

import torch


def resolve_device(name: str = 'auto') -> torch.device:
    """``'auto'`` (CUDA when available), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``;
    a device this machine lacks is a one-line :class:`ValueError`."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here "
                         f"(use --device cpu or auto)")
    return device


def make_deterministic() -> None:
    """One CPU thread and PyTorch's deterministic algorithms: a rerun of the
    same config is bit-identical (several threads change the order of
    floating-point reductions). Affects the whole process."""
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')  # deterministic cuBLAS
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

