r"""A training job: one run config trained into one run folder, from the
process's set-up to the metrics file, as ``native-pyg train`` runs it. The
command parses its options into a :class:`TrainingJob` and hands it to
:func:`run_training_job`; a script can do the same::

    from native_pyg.config import RunConfig
    from native_pyg.training_job import TrainingJob, run_training_job

    job = TrainingJob(RunConfig.from_yaml('examples/configs/synthetic.yaml'), out='runs/x')
    metrics = run_training_job(job)  # also in runs/x/metrics.json

Each step once, in this order: the process (CPU threads, the ``torchrun``
process group), the run folder (created, locked, checked against
``resume`` and ``overwrite``: a bad folder costs one line before any data
loads), the data and the model (:mod:`native_pyg.pipeline`), determinism
and the seed, the trainer (resumed from ``last.pt`` where asked), training,
and the filtered metrics on valid and test. What a user can fix is one
line: a :class:`JobError`, or the folder's
:class:`~native_pyg.training.runs.RunDirectoryError`.

:func:`~native_pyg.pipeline.pipeline` is the same run for Python callers:
it returns the trainer and model instead of printing what trains.
"""
from __future__ import annotations

import contextlib
import json
import os.path as osp
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Tuple, Type

from native_pyg.config.run_config import RunConfig
from native_pyg.data.os_errors import os_error_message
from native_pyg.evaluation import format_metrics
from native_pyg.builders import build_model, load_data
from native_pyg.pipeline import final_metrics
from native_pyg.training import NonFiniteLossError, Trainer, setup_process
from native_pyg.training.checkpoint import write_text_atomically
from native_pyg.training.distributed import init_distributed, main_first
from native_pyg.training.runs import run_folder
from native_pyg.training.threads import apply_threads
from native_pyg.training.trackers import start_trackers
from native_pyg.training.trained_setup import describe_setup, trained_setup


class JobError(ValueError):
    """What stops a :class:`TrainingJob` that its user can fix, in one line:
    data that cannot be read, a model this data or machine cannot build, a
    checkpoint that cannot be resumed, a loss that is no longer finite, a
    full disk."""


@dataclass(frozen=True)
class TrainingJob:
    """One run to train: a run config, every key checked, and its folder.

    Args:
        run (RunConfig): The run's config.
        out (str): The run folder (checkpoints, history, curves,
            ``metrics.json``).
        resume (bool, optional): Continue the run in ``out`` from its
            ``last.pt``. (default: :obj:`False`)
        overwrite (bool, optional): Replace the run in ``out``; it is kept
            until the new run writes its first checkpoint.
            (default: :obj:`False`)
        allow_config_changes (bool, optional): On resuming, apply config
            changes beyond those always allowed. (default: :obj:`False`)
        trackers (tuple[str], optional): Result trackers, each writing
            under ``out/tracking/<name>``. (default: :obj:`()`)
        quiet (bool, optional): No model summary. (default: :obj:`False`)
        options (tuple[str, str, str], optional): How messages name the
            folder, ``resume`` and ``overwrite``: the command's options.
            (default: ``('out', 'resume=True', 'overwrite=True')``)
    """
    run: RunConfig
    out: str
    resume: bool = False
    overwrite: bool = False
    allow_config_changes: bool = False
    trackers: Tuple[str, ...] = ()
    quiet: bool = False
    options: Tuple[str, str, str] = ('out', 'resume=True', 'overwrite=True')


def run_training_job(job: TrainingJob) -> Optional[Dict[str, Any]]:
    """Trains ``job`` into its folder and returns what its
    ``metrics.json`` holds (:func:`~native_pyg.pipeline.final_metrics`);
    under ``torchrun`` every rank trains and rank 0 alone writes, reports
    and returns the metrics (the other ranks :obj:`None`).

    Raises:
        JobError: One line for what the user can fix.
        RunDirectoryError: The folder cannot be used as asked.
    """
    run = job.run
    _, busy = apply_threads(run.training.threads)
    if busy:
        warnings.warn(busy)
    with _one_line((RuntimeError, ValueError), 'torch.distributed: '):
        info = init_distributed(run.training.device or 'auto')
    with run_folder(job.out, job.resume, job.overwrite, job.options, info):
        last = osp.join(job.out, 'last.pt')
        if job.resume and not osp.exists(last):
            raise JobError(f"{job.options[1]}: no checkpoint at {last}")
        with main_first(info), _one_line((ValueError,)):  # rank 0 fills the dataset's cache first
            data = load_data(run)
        with _one_line((ValueError,)):
            model = build_model(data, run)
        setup_process(run.training, threads=False)  # determinism and the seed, right before training
        with _one_line((ValueError, ImportError)):  # e.g. no neighbour-sampling backend
            trainer = Trainer(model, data, run, out_dir=job.out)
        if job.resume:
            with _one_line((ValueError, RuntimeError)):
                trainer.resume(last, allow_changes=job.allow_config_changes)
        trackers = []
        if info.is_main:
            if job.resume:
                print(f"resumed from {last} at epoch {trainer.epoch}")
                for change in trainer.config_log[-1:]:
                    if change['epoch'] == trainer.epoch:
                        print('applied config changes: ' + ', '.join(
                            f"{c['key']} {c['old']!r} -> {c['new']!r}" for c in change['changes']))
            # what trains, also when quiet: nothing changes silently
            print(describe_setup(trained_setup(trainer), run.dataset), flush=True)
            if not job.quiet:
                print(trainer.model if not info.enabled else
                      f"{trainer.model}\non {info.world_size} processes (torch.distributed), "
                      f"batch {run.training.batch_size} per process")
            with _one_line((ValueError,)):
                trackers = start_trackers(job.trackers, osp.join(job.out, 'tracking'),
                                          run.to_dict(), osp.basename(osp.abspath(job.out)))
            trainer.epoch_callbacks.extend(trackers)
        try:
            trainer.fit()
        except NonFiniteLossError as e:
            raise JobError(str(e)) from None
        except OSError as e:  # a full disk, a folder made read-only meanwhile
            kept = f"; {last} still holds the last complete epoch" if osp.exists(last) else ''
            raise JobError(f"{os_error_message(e)}{kept}") from None
        finally:
            for tracker in trackers:
                tracker.close()
        metrics = final_metrics(trainer, run.training.progress)
        if not info.is_main:
            return None
        path = osp.join(job.out, 'metrics.json')
        try:
            write_text_atomically(path, json.dumps(metrics, indent=2))
        except OSError as e:
            raise JobError(os_error_message(e, path)) from None
        print(f"{run.dataset} test (filtered, {metrics['test']['ties']} ties)")
        print(format_metrics(metrics['test']))
        print(f"checkpoint: {osp.join(job.out, 'model.pt')}; metrics: {path}; "
              f"curves: {osp.join(job.out, 'curves.png')}")
        return metrics


@contextlib.contextmanager
def _one_line(errors: Tuple[Type[BaseException], ...], prefix: str = '') -> Iterator[None]:
    """``errors`` raised inside become a :class:`JobError` of the same message."""
    try:
        yield
    except errors as e:
        raise JobError(prefix + str(e)) from None
