"""Run directories: never replace a previous run by accident, one training
process per directory, and resume only what the checkpoint can continue."""
from __future__ import annotations

import glob
import os
import os.path as osp
import shutil
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

from native_pyg.data.atomic_files import check_writable
from native_pyg.data.os_errors import os_error_message
from native_pyg.data.schema import fingerprint_differences
from native_pyg.training.distributed import DistributedInfo, main_first
from native_pyg.training.checkpoint import load_checkpoint
from native_pyg.config.legacy import with_legacy_defaults
from native_pyg.config.run_config import flatten

#: the files ``train`` writes into ``--out``
RUN_FILES = ('last.pt', 'best.pt', 'model.pt', 'metrics.json', 'history.jsonl', 'curves.png')

#: where ``--overwrite`` keeps the previous run until the new one has a checkpoint
REPLACED = '.replaced-run'

#: config keys a resumed run cannot change: they define the model, its data
#: and the random streams the checkpoint continues
FROZEN = ('dataset', 'data.dedupe', 'data.remove_leakage', 'data.nan_rows',
          'data.zero_rows_missing', 'data.text_features', 'data.text_model', 'model.', 'training.seed', 'training.adversarial',
          'training.noise_dim', 'training.dedupe_train')
#: keys a resumed run may change freely: when to stop, how to report, where to
#: run, where the data lies (its fingerprint is checked separately)
MUTABLE = ('training.epochs', 'training.eval_every', 'training.patience', 'training.progress',
           'training.device', 'training.eval_batch_size', 'training.num_workers',
           'training.pin_memory', 'training.persistent_workers', 'training.deterministic', 'training.compile',
           'training.reuse_memory', 'training.cpu_blas', 'training.threads',
           'training.eval_protocol', 'training.eval_sample', 'training.test_sample',
           'training.eval_candidates',
           'training.stand_in_epochs',
           'root', 'data.verify')


class RunDirectoryError(ValueError):
    """A run directory cannot be used as asked (one line, for the CLI)."""


def make_run_dir(out: str, option: str = 'out') -> bool:
    """Makes ``out`` (and its parents) a directory this process can write
    into, before anything long runs: a bad run folder costs one line, not
    a loaded dataset. Returns whether it was created.

    Raises:
        RunDirectoryError: ``out`` is a file, cannot be created or is not
            writable; one line naming ``option`` and the path.
    """
    if osp.exists(out) and not osp.isdir(out):
        raise RunDirectoryError(f"{option} {out}: exists and is a file, not a directory")
    created = not osp.exists(out)
    try:
        os.makedirs(out, exist_ok=True)
        check_writable(out)
    except OSError as e:
        raise RunDirectoryError(f"{option} {os_error_message(e, out)}") from None
    return created


def _run_files_in(out: str) -> List[str]:
    """The files of :data:`RUN_FILES` present in ``out``."""
    return [f for f in RUN_FILES if osp.exists(osp.join(out, f))]


def prepare_run_dir(out: str, resume: bool = False, overwrite: bool = False,
                    options: Tuple[str, str] = ('--resume', '--overwrite')) -> None:
    """Checks a run directory before training; removes nothing. (With
    ``overwrite`` the previous run is set aside by :func:`replacing_run`.)
    A previous run a killed ``--overwrite`` left aside is first put back, or
    dropped if the new run had reached its first checkpoint.

    Raises:
        RunDirectoryError: ``out`` already holds a run and neither
            ``resume`` nor ``overwrite`` was asked for, or both were.
    """
    resume_option, overwrite_option = options  # how the caller names them (CLI or Python)
    if resume and overwrite:
        raise RunDirectoryError(f"{resume_option} continues the run in {out} and "
                                f"{overwrite_option} replaces it: give one of them")
    _settle_replaced(out)
    existing = _run_files_in(out)
    if existing and not (resume or overwrite):
        raise RunDirectoryError(f"{out} already holds a run ({', '.join(existing)}): continue it "
                                f"with {resume_option}, or replace it with {overwrite_option}")
    os.makedirs(out, exist_ok=True)
    # temporary files of a checkpoint write that was killed (the lock is held)
    for f in glob.glob(osp.join(out, '.ckpt-*.tmp')):
        os.remove(f)


def _has_checkpoint(out: str) -> bool:
    return any(osp.exists(osp.join(out, f)) for f in ('last.pt', 'model.pt'))


def _settle_replaced(out: str) -> None:
    """Ends a replacement: the previous run (in ``out/.replaced-run``) is
    dropped if the new run has a checkpoint, else put back in place of
    whatever the new run had written."""
    aside = osp.join(out, REPLACED)
    if not osp.isdir(aside):
        return
    if _has_checkpoint(out):
        shutil.rmtree(aside)
        return
    for f in _run_files_in(out):
        os.remove(osp.join(out, f))
    for f in os.listdir(aside):
        os.replace(osp.join(aside, f), osp.join(out, f))
    os.rmdir(aside)


@contextmanager
def replacing_run(out: str, overwrite: bool) -> Iterator[None]:
    """With ``overwrite``, the run already in ``out`` is moved aside (to
    ``out/.replaced-run``, a rename) while the context runs, and at its end
    removed if the new run wrote a checkpoint, or else put back: a new run
    that fails or is interrupted before its first checkpoint (a bad config,
    a missing device, Ctrl-C) leaves the previous run as it was. A process
    killed inside the context leaves it aside; the next
    :func:`prepare_run_dir` on ``out`` settles it the same way. Call with
    the run's :class:`RunLock` held, after :func:`prepare_run_dir`."""
    existing = _run_files_in(out) if overwrite else []
    if existing:
        aside = osp.join(out, REPLACED)
        os.makedirs(aside)
        for f in existing:
            os.replace(osp.join(out, f), osp.join(aside, f))
    try:
        yield
    finally:
        if existing:
            _settle_replaced(out)


@contextmanager
def run_folder(out: str, resume: bool = False, overwrite: bool = False,
               options: Tuple[str, str, str] = ('out', 'resume=True', 'overwrite=True'),
               info: Optional[DistributedInfo] = None) -> Iterator[None]:
    """The run directory ``out``, held while a run trains into it: made
    where it is missing (:func:`make_run_dir`), locked (one process per run
    directory, :class:`RunLock`), the run it holds checked against
    ``resume`` and ``overwrite`` (:func:`prepare_run_dir`), and a run to be
    replaced set aside until the new one has a checkpoint
    (:func:`replacing_run`). A folder made here that the run left empty (it
    failed before writing anything) is removed again. ``options`` names the
    folder, ``resume`` and ``overwrite`` in errors (the caller's words: the
    command's options or the function's arguments). Under ``torchrun``
    (``info``; default: one process) rank 0 holds it, and the other ranks
    wait until it is prepared."""
    info = info or DistributedInfo()
    if not info.is_main:  # rank 0 owns the folder: its lock, checks and files
        with main_first(info):
            pass
        yield
        return
    out_option, resume_option, overwrite_option = options
    created = make_run_dir(out, out_option)
    try:
        with RunLock(out):
            with main_first(info):
                prepare_run_dir(out, resume, overwrite, (resume_option, overwrite_option))
            with replacing_run(out, overwrite):
                yield
    finally:
        if created and osp.isdir(out) and set(os.listdir(out)) <= {'.lock'}:
            shutil.rmtree(out, ignore_errors=True)


class RunLock:
    """An exclusive lock on ``DIR/.lock`` for as long as the context runs,
    so two processes never train into one directory. The operating system
    drops it when the holder dies, even by SIGKILL (``fcntl.flock``; where
    ``fcntl`` does not exist the lock is not taken)."""

    def __init__(self, out: str, wait: bool = False):
        self.path = osp.join(out, '.lock')
        self.wait = wait  # block until the holder releases it, instead of refusing
        self._file = None

    def __enter__(self) -> 'RunLock':
        try:
            import fcntl
        except ImportError:  # not a POSIX system
            return self
        self._file = open(self.path, 'a+')
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except OSError:
            self._file.close()
            self._file = None
            raise RunDirectoryError(f"another process is training into {osp.dirname(self.path)} "
                                    f"(it holds {self.path}); wait for it or choose another --out")
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        """Releases the lock (again: nothing)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def config_changes(saved: Dict[str, Any], new: Dict[str, Any], path: str,
                   allow_changes: bool = False) -> List[Tuple[str, Any, Any]]:
    """``(key, saved, new)`` for every key of ``new`` that differs from the
    checkpoint's config ``saved``.

    Raises:
        ValueError: a frozen key changed (model, modalities, dataset, seed,
            CoMAT on/off), or another key outside :data:`MUTABLE` changed
            without ``allow_changes``; one line listing the differences.
    """
    old, cur = flatten(with_legacy_defaults(saved)), flatten(new)
    changes = [(k, old.get(k), cur[k]) for k in sorted(cur) if old.get(k) != cur[k]]
    frozen = [c for c in changes if c[0].startswith(FROZEN)]
    if frozen:
        raise ValueError(f"{path}: cannot resume with a different {_list(frozen)}; these keys "
                         f"define the checkpointed model and data (use a new --out)")
    other = [c for c in changes if c[0] not in MUTABLE]
    if other and not allow_changes:
        raise ValueError(f"{path}: the config differs from the checkpoint's in {_list(other)}; "
                         f"resume with --allow-config-changes to apply that, or drop the change")
    return changes


def _list(changes: List[Tuple[str, Any, Any]]) -> str:
    return ', '.join(f'{k} ({a!r} -> {b!r})' for k, a, b in changes)


def resumable_checkpoint(path: str, config: Dict[str, Any], data_fingerprint: Dict[str, Any],
                         allow_changes: bool = False) -> Tuple[Dict[str, Any], List[Tuple]]:
    """``(state, changes)`` of a ``last.pt`` that a run of ``config`` on data
    of ``data_fingerprint`` can continue: a one-line :class:`ValueError`
    for another kind of file or other data, and the config's changes
    (:func:`config_changes`). The state stays on the CPU (RNG states must)."""
    state = load_checkpoint(path, map_location='cpu')
    needed = {'config', 'model', 'optimizer', 'epoch', 'sampler', 'history'}
    if not isinstance(state, dict) or not needed <= set(state):
        raise ValueError(f"{path}: not a native_pyg training checkpoint (expected the "
                         f"last.pt that 'train' writes)")
    changes = config_changes(state['config'], config, path, allow_changes)
    differs = fingerprint_differences(state.get('data') or {}, data_fingerprint)
    if state.get('data') and differs:
        raise ValueError(f"{path}: the data differs from the data it was trained on "
                         f"({differs}); resume with the same dataset files")
    return state, changes
