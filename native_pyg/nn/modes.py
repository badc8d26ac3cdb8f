"""A module's training mode, set for a block and restored after it: the one
home of "evaluate, then put the mode back"."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def evaluating(module: Any) -> Iterator[None]:
    """``module`` in eval mode inside the block (no dropout, no batch
    statistics updated) and in its own mode again after it, also when the
    block raises or is interrupted. An object without a ``training`` mode
    passes through unchanged."""
    was_training = getattr(module, 'training', None)
    if was_training is not None:
        module.eval()
    try:
        yield
    finally:
        if was_training is not None:
            module.train(was_training)
