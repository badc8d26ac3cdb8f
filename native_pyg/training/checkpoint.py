"""Atomic checkpoints that load safely (``weights_only=True``)."""
from __future__ import annotations

import os
import tempfile
from typing import Any, Dict

import torch


def save_checkpoint(state: Dict[str, Any], path: str) -> None:
    """Writes ``state`` to ``path`` atomically: a temporary file in the same
    directory, flushed to disk, then renamed over ``path``. A crash leaves
    either the old checkpoint or the new one, never a truncated file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.ckpt-', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path: str, map_location: Any = 'cpu') -> Dict[str, Any]:
    """Loads a checkpoint with ``weights_only=True``: a file from the internet
    cannot run code. Errors name the file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise RuntimeError(f"{path}: not a readable native_pyg checkpoint "
                           f"({type(e).__name__}: {e})") from None
