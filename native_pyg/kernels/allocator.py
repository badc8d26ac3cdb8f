r"""The C allocator's handling of large tensors on Linux CPUs.

glibc's ``malloc`` serves every block above 32 MB (and smaller ones, by its
dynamic threshold) with a fresh ``mmap`` and returns it to the system on
``free``; each new large tensor then pays a page fault per 4 KB page on
first touch. A training step at the paper's settings allocates and frees
gigabytes of such tensors, and the faults can cost more than the copies
themselves (``docs/benchmarks.md``). :func:`reuse_freed_memory` makes
``malloc`` keep freed memory in its heap for reuse instead (``mallopt``: no ``mmap``, no trimming),
as PyTorch's CPU tuning guide suggests with jemalloc or tcmalloc. The
process's resident memory then stays at its peak until it exits, and the
first steps still fault while the heap grows to what a step needs.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from typing import Iterator, Optional

#: ``mallopt`` parameters of glibc's ``malloc.h``, and their defaults
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
# glibc, once it keeps freed memory; how many freed_memory_returned contexts are open
_STATE = {'libc': None, 'returning': 0}


def c_library() -> Optional[ctypes.CDLL]:
    """The process's C library on Linux, else :obj:`None`."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError:
        return None


def _keep_freed(libc: ctypes.CDLL) -> bool:
    return libc.mallopt(M_MMAP_MAX, 0) == 1 and \
        libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1


def reuse_freed_memory() -> bool:
    """Tells glibc's ``malloc`` to keep freed memory for reuse (once per
    process); ``False`` where the C library is not glibc (nothing changes)."""
    if _STATE['libc'] is not None:
        return True
    libc = c_library()
    if libc is None or not hasattr(libc, 'mallopt'):  # musl and others: no mallopt
        return False
    ok = _keep_freed(libc)
    _STATE['libc'] = libc if ok else None
    return ok


@contextlib.contextmanager
def freed_memory_returned() -> Iterator[None]:
    """Within it, ``malloc`` as glibc's defaults (large blocks mapped and
    returned on ``free``), after the heap kept by :func:`reuse_freed_memory`
    is trimmed; on exit, freed memory is kept again. For work between steps
    (validation) whose blocks differ from a step's: kept apart, the two
    heaps would add up. Nested, only the outermost context changes and
    restores the setting."""
    libc = _STATE['libc']
    if libc is None:
        yield
        return
    if _STATE['returning'] == 0:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
    _STATE['returning'] += 1
    try:
        yield
    finally:
        _STATE['returning'] -= 1
        if _STATE['returning'] == 0:
            _keep_freed(libc)
