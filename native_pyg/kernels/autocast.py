"""Whether CPU autocast is on, on every PyTorch the package supports.

R-GCN's choice of products (``nn/gnn.py``) and the routing of a step's CPU
products (``kernels/cpu_blas.py``) both leave autocast's lowered products
alone; ``torch.is_autocast_enabled`` takes a device type only from PyTorch
2.4 on.
"""
from __future__ import annotations

import torch


def cpu_autocast_enabled() -> bool:
    """Whether :func:`torch.autocast` is on for CPU tensors here."""
    try:
        return torch.is_autocast_enabled('cpu')
    except TypeError:  # PyTorch before 2.4
        return torch.is_autocast_cpu_enabled()
