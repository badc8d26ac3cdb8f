"""Atomic checkpoints that load safely (``weights_only=True``)."""
from __future__ import annotations

import ctypes
import os
import zipfile
from typing import Any, Dict

import torch

from native_pyg.data.atomic_files import atomic_file
from native_pyg.data.safe_load import load_pt
from native_pyg.kernels.allocator import c_library


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
    """Writes ``state`` to ``path`` atomically
    (:func:`~native_pyg.data.atomic_files.atomic_file`, flushed to disk): a
    crash leaves either the old checkpoint or the new one, never a
    truncated file; a failed write (e.g. no space left on the device)
    raises its :class:`OSError`, naming ``path``, and leaves the old
    checkpoint."""
    with atomic_file(path, 'wb', sync=True) as f:
        writer = _WriteAll(f)
        try:
            torch.save(state, writer)
        except RuntimeError:
            if writer.error is None:
                raise
            raise OSError(writer.error.errno, writer.error.strerror, path) from None


def write_text_atomically(path: str, text: str, replace: bool = True) -> None:
    """Writes ``text`` to ``path`` atomically
    (:func:`~native_pyg.data.atomic_files.atomic_file`): a failed or
    interrupted write (e.g. a full disk) leaves the old file or none, never
    half of one, and no temporary. With ``replace=False`` an existing
    ``path`` is never replaced, even one that appeared while writing
    (:class:`FileExistsError`)."""
    with atomic_file(path, 'w', replace=replace) as f:
        f.write(text)


def load_checkpoint(path: str, map_location: Any = 'cpu', mmap: bool = False) -> Dict[str, Any]:
    """Loads a checkpoint with ``weights_only=True``: a file from the internet
    cannot run code. Errors are one line naming the file
    (:func:`~native_pyg.data.safe_load.load_pt`).

    With ``mmap``, tensors are read from the file as they are touched (a
    private mapping: writing to them changes the memory, never the file), so
    that a model can take them as its parameters without a second copy in
    memory; a file in the format before zip archives is read whole."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: checkpoint not found")
    kwargs = {'mmap': True} if mmap and zipfile.is_zipfile(path) else {}
    try:
        return load_pt(path, 'a checkpoint', map_location=map_location, **kwargs)
    except ValueError as e:
        raise RuntimeError(str(e)) from None


#: bytes of a large tensor copied from a mapped checkpoint before its pages are let go
BLOCK_BYTES = 64 * 2 ** 20
_MADV_DONTNEED = 4


def _let_go(t: torch.Tensor, libc) -> None:
    """Drops the resident pages of ``t``, a slice of a private file mapping:
    touched again, they are read from the file again."""
    page = 4096
    start = -(-t.data_ptr() // page) * page
    end = (t.data_ptr() + t.numel() * t.element_size()) // page * page
    if end > start:
        libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED)


def load_weights_into(model: torch.nn.Module, path: str) -> Dict[str, Any]:
    """Copies the ``'model'`` weights of checkpoint ``path`` into ``model``'s
    own tensors; returns the checkpoint. The file is mapped, and a large
    tensor is copied in blocks of :data:`BLOCK_BYTES` whose pages are let
    go once copied, so that the model's table and the file's are never both
    resident (Linux; elsewhere the file's pages stay until the copy ends)."""
    mapped = zipfile.is_zipfile(path)
    state = load_checkpoint(path, mmap=True)
    weights, own = dict(state['model']), model.state_dict()
    libc = c_library() if mapped else None
    with torch.no_grad():
        for key, src in weights.items():
            dst = own.get(key)
            if (libc is None or dst is None or dst.shape != src.shape or dst.dtype != src.dtype
                    or src.device.type != 'cpu' or not src.is_contiguous() or src.dim() == 0
                    or src.numel() * src.element_size() <= BLOCK_BYTES):
                continue
            rows = max(1, BLOCK_BYTES // max(1, src[0].numel() * src.element_size()))
            for start in range(0, src.size(0), rows):
                dst[start:start + rows].copy_(src[start:start + rows])
                _let_go(src[start:start + rows], libc)
            weights[key] = dst  # in place already
    model.load_state_dict(weights)
    return state
