"""Files and directories written whole or not at all: the one home of the
library's atomic writes (checkpoints, run files, caches, a generated graph's
metadata, feature stores)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_file(path: str, mode: str = 'wb', replace: bool = True,
                sync: bool = False) -> Iterator[IO]:
    """A file to write ``path`` through: a temporary file in the same
    directory (created with it), moved onto ``path`` when the block ends
    without an error, removed when it raises or is interrupted, so that a
    crash or a full disk leaves the old file or none, never part of one.

    Args:
        path (str): The file to write.
        mode (str, optional): ``'wb'`` or ``'w'``. (default: ``'wb'``)
        replace (bool, optional): Replace an existing ``path``; with
            :obj:`False` an existing ``path`` is never replaced, even one
            that appeared while writing (:class:`FileExistsError`).
            (default: :obj:`True`)
        sync (bool, optional): Flush the file to disk before it is moved
            into place, so that it survives a power loss whole.
            (default: :obj:`False`)
    """
    if mode not in ('wb', 'w'):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}-', suffix='.tmp',
                               dir=directory)
    try:
        with os.fdopen(fd, mode, **({'buffering': 0} if mode == 'wb' else {})) as f:
            yield f
            if sync:
                f.flush()
                os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:  # a hard link is created whole or not at all, and never over a file
            os.link(tmp, path)
            os.remove(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """A directory to write ``path`` through: the block writes into a
    temporary directory beside ``path`` (same file system), which is renamed
    onto ``path`` when the block ends without an error and removed when it
    raises or is interrupted, so that a killed write leaves no half
    directory. An empty directory at ``path`` is replaced; anything else
    there makes the rename fail (:class:`OSError`), and nothing in it is
    touched.

    Args:
        path (str): The directory to write.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f'.{os.path.basename(os.path.abspath(path))}.writing-')
    try:
        yield tmp
        if os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)  # rmdir fails rather than lose a file that appeared meanwhile
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_writable(directory: str) -> None:
    """Creates nothing: raises the :class:`OSError` of creating a file in
    ``directory`` (missing, read-only, no permission), else returns."""
    fd, probe = tempfile.mkstemp(prefix='.write-check-', dir=directory)
    os.close(fd)
    os.remove(probe)
