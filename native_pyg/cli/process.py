"""What a ``native-pyg`` command sets for its process before it works: its
CPU threads and its place in a ``torchrun`` process group."""
from __future__ import annotations

import warnings
from typing import Optional

from native_pyg.cli.errors import CLIError


def use_threads(requested: Optional[int]) -> int:
    """Sets this process's CPU threads (:mod:`native_pyg.training.threads`);
    a busy machine is one warning line."""
    from native_pyg.training.threads import apply_threads
    if requested is not None and not 1 <= requested <= 1024:
        raise CLIError(f"--threads {requested}: expected a number of threads from 1 to 1024")
    threads, warning = apply_threads(requested)
    if warning:
        warnings.warn(warning)
    return threads


def join_process_group(device: Optional[str]):
    """Joins the ``torchrun`` process group, if any, and returns this
    process's :class:`~native_pyg.training.distributed.DistributedInfo`
    (one line on failure)."""
    from native_pyg.training.distributed import init_distributed
    try:
        return init_distributed(device or 'auto')
    except (RuntimeError, ValueError) as e:
        raise CLIError(f"torch.distributed: {e}") from None
