"""Paths the ``native-pyg`` command reads and writes: ``~`` expanded in every
path option, and where a command will write, checked before any long
computation (a missing parent, a file where a directory is wanted, a
read-only directory), so that a failure costs one line, not a finished
evaluation."""
from __future__ import annotations

import argparse
import json
import os.path as osp
from typing import Any

from native_pyg.cli.errors import CLIError
from native_pyg.data.atomic_files import check_writable
from native_pyg.data.os_errors import os_error_message


def path_arg(text: str) -> str:
    """``type=`` of every path option: ``~`` expanded, empty paths refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return osp.expanduser(text)


def _writable_dir(directory: str, option: str) -> None:
    """Creates nothing; fails with one line unless a file can be created in
    ``directory``."""
    try:
        check_writable(directory)
    except OSError as e:
        raise CLIError(f"{option} {os_error_message(e, directory)}") from None


def check_output_dir(path: str, option: str) -> bool:
    """Makes sure ``path`` is (or can be made) a directory this process can
    write into (:func:`~native_pyg.training.runs.make_run_dir`); creates it
    and its parents if missing. Returns whether it was created."""
    from native_pyg.training.runs import RunDirectoryError, make_run_dir
    try:
        return make_run_dir(path, option)
    except RunDirectoryError as e:
        raise CLIError(str(e)) from None


def check_output_file(path: str, option: str) -> None:
    """Makes sure ``path`` can be written: it does not exist (no result is
    ever overwritten), and its directory exists and is writable."""
    parent = osp.dirname(osp.abspath(path))
    if osp.isdir(path):
        raise CLIError(f"{option} {path}: is a directory; give a file name")
    if osp.lexists(path):
        raise CLIError(f"{option} {path}: exists; choose a new path (nothing is overwritten)")
    if not osp.isdir(parent):
        what = 'is a file' if osp.exists(parent) else 'does not exist'
        raise CLIError(f"{option} {path}: the directory {parent} {what}")
    _writable_dir(parent, option)


def write_text_atomic(path: str, text: str, option: str = '', replace: bool = True) -> None:
    """:func:`~native_pyg.training.checkpoint.write_text_atomically` (the old
    file or the new one, never half of one; with ``replace=False`` never over
    an existing file); an :class:`OSError` becomes one line naming ``path``."""
    from native_pyg.training.checkpoint import write_text_atomically
    try:
        write_text_atomically(path, text, replace=replace)
    except OSError as e:
        raise CLIError(f"{option + ' ' if option else ''}{os_error_message(e, path)}") from None


def write_json_atomic(path: str, value: Any, option: str = '', replace: bool = True) -> None:
    """:func:`write_text_atomic` of ``value`` as indented JSON."""
    write_text_atomic(path, json.dumps(value, indent=2), option, replace)
