"""Atomic checkpoints that load safely (``weights_only=True``)."""
from __future__ import annotations

import os
import tempfile
from typing import Any, Dict

import torch

from native_pyg.data.safe_load import load_pt


class _WriteAll:
    """A file torch writes a checkpoint through: every ``write`` writes all
    its bytes or raises, and the :class:`OSError` of a failed write (a full
    disk) is kept, since torch reports it only as a ``RuntimeError`` of its
    zip writer."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        view = memoryview(data).cast('B')
        try:
            done = 0
            while done < len(view):
                done += self.f.write(view[done:])
        except OSError as e:
            self.error = e
            raise
        return len(view)

    def flush(self) -> None:
        self.f.flush()


def save_checkpoint(state: Dict[str, Any], path: str) -> None:
    """Writes ``state`` to ``path`` atomically: a temporary file in the same
    directory, flushed to disk, then renamed over ``path``. A crash leaves
    either the old checkpoint or the new one, never a truncated file; a
    failed write (e.g. no space left on the device) raises its
    :class:`OSError`, naming ``path``, and leaves the old checkpoint."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.ckpt-', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb', buffering=0) as f:
            writer = _WriteAll(f)
            try:
                torch.save(state, writer)
            except RuntimeError:
                if writer.error is None:
                    raise
                raise OSError(writer.error.errno, writer.error.strerror, path) from None
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomically(path: str, text: str, replace: bool = True) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same
    directory renamed over it: a failed or interrupted write (e.g. a full
    disk) leaves the old file or none, never half of one, and no temporary.
    With ``replace=False`` an existing ``path`` is never replaced, even one
    that appeared while writing (:class:`FileExistsError`)."""
    fd, tmp = tempfile.mkstemp(prefix='.write-', suffix='.tmp',
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        if replace:
            os.replace(tmp, path)
        else:  # a hard link is created whole or not at all, and never over a file
            os.link(tmp, path)
            os.remove(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path: str, map_location: Any = 'cpu') -> Dict[str, Any]:
    """Loads a checkpoint with ``weights_only=True``: a file from the internet
    cannot run code. Errors are one line naming the file
    (:func:`~native_pyg.data.safe_load.load_pt`)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return load_pt(path, 'a checkpoint', map_location=map_location)
    except ValueError as e:
        raise RuntimeError(str(e)) from None
