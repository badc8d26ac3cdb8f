r"""How many CPU threads PyTorch uses, chosen where the process starts
(``--threads``, ``training.threads``).

PyTorch's default is one thread per core. Its parallel regions end in a
barrier, so when another program holds one of those cores, every region
waits for the thread that is not running, and an epoch can run many times
slower than on one thread (measured in ``docs/benchmarks.md``,
"Threads"). The automatic
choice, :func:`choose_threads`, therefore takes the cores that the load
average leaves free:

.. math::
    T = \max\bigl(1,\ \mathrm{round}(C - L_1)\bigr)

with :math:`C` the cores this process may run on and :math:`L_1` the
one-minute load average when the process starts (the other work's), divided
among the processes ``torchrun`` starts on the machine
(``LOCAL_WORLD_SIZE``), unless ``OMP_NUM_THREADS`` says otherwise.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch


def usable_cores() -> int:
    """The cores this process may run on (its affinity, else the count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def load_average() -> Optional[float]:
    """The one-minute load average, or ``None`` where the system has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def choose_threads(requested: Optional[int] = None) -> Tuple[int, Optional[str]]:
    """``(threads, warning)``: ``requested`` if given, else
    ``OMP_NUM_THREADS`` if set, else the cores the load average leaves free
    (module docstring). ``warning`` is one line when the cores are already
    busy (load average at least the cores minus a half) and more than one
    thread is asked for, else ``None``."""
    cores, load = usable_cores(), load_average()
    if requested is not None:
        threads = int(requested)
    elif os.environ.get('OMP_NUM_THREADS', '').strip().isdigit() and \
            int(os.environ['OMP_NUM_THREADS']) > 0:
        threads = int(os.environ['OMP_NUM_THREADS'])
    else:  # under torchrun the processes of one machine share its free cores
        local = max(1, int(os.environ.get('LOCAL_WORLD_SIZE', '1') or 1))
        threads = max(1, min(cores, round(cores - (load or 0.0))) // local)
    warning = None
    if load is not None and load >= cores - 0.5 and threads > 1:
        warning = (f"the load average is {load:.1f} on {cores} cores: other work holds them, "
                   f"and {threads} threads may run many times slower than 1 (--threads 1 or "
                   f"training.threads: 1)")
    return threads, warning


def apply_threads(requested: Optional[int] = None) -> Tuple[int, Optional[str]]:
    """Sets PyTorch's intra-op threads to :func:`choose_threads`'s choice
    for this process and returns ``(threads, warning)``."""
    threads, warning = choose_threads(requested)
    torch.set_num_threads(threads)
    return threads, warning
