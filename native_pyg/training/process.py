"""What a run sets for the whole process or picks for it: the device it
runs on, and threads, determinism and seeds in one call
(:func:`setup_process`) made where the process starts."""
from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import torch

from native_pyg.training import distributed
from native_pyg.training.threads import apply_threads


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



def setup_process(training: Any, rank: Optional[int] = None,
                  threads: bool = True) -> Tuple[int, Optional[str]]:
    r"""Everything a run sets for the whole process, in one call made where
    the process starts (the CLI, :func:`~native_pyg.pipeline.pipeline`, a
    script) right before it builds its :class:`~native_pyg.training.Trainer`:

    1. PyTorch's CPU threads (``training.threads``, see
       :func:`~native_pyg.training.threads.apply_threads`), unless ``threads``
       is :obj:`False` because the caller already chose them;
    2. deterministic algorithms and one thread (``training.deterministic``);
    3. the global random generator seeded with ``training.seed + rank``: the
       draws of a step that use it (dropout, CoMAT's noise) differ per rank
       and repeat per seed.

    Args:
        training (TrainConfig): The run's ``training`` section.
        rank (int, optional): This process's rank (default: the
            ``torch.distributed`` rank, 0 outside it).
        threads (bool, optional): Whether to set the threads here.
            (default: :obj:`True`)

    Returns the threads in use and the one-line warning of
    :func:`~native_pyg.training.threads.choose_threads` (or :obj:`None`).
    """
    chosen, warning = (apply_threads(training.threads) if threads
                       else (torch.get_num_threads(), None))
    if training.deterministic:
        make_deterministic()
        chosen = 1
    if rank is None:
        rank = distributed.current().rank
    torch.manual_seed(training.seed + rank)
    return chosen, warning
