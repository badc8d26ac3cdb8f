"""``native-pyg tune``: an Optuna study of a variant's config (see
:mod:`native_pyg.tuning`)."""
from __future__ import annotations

import argparse
import os

from native_pyg.cli.errors import CLIError
from native_pyg.cli.options import add_config_args, add_out_arg, add_threads_arg, base_config
from native_pyg.cli.paths import check_output_dir, path_arg
from native_pyg.cli.process import use_threads
from native_pyg.data.os_errors import os_error_message

HELP = ("search a variant's config with Optuna (TPE, pruning on valid MRR; study in "
        "OUT/study.db, OUT/best.yaml)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``tune``'s options: the config trials start from, the study and its
    budget."""
    from native_pyg.experiments import VARIANTS
    from native_pyg.training.trackers import TRACKERS
    add_config_args(p, 'YAML config the trials start from')
    add_out_arg(p, 'study directory: study.db (resumable, shareable), best.yaml, plots')
    p.add_argument('--trials', type=int, default=20,
                   help="finished trials the study should hold; rerun with more to add only "
                        "the missing ones (default: 20)")
    p.add_argument('--variant', default='native', choices=sorted(VARIANTS),
                   metavar='VARIANT', help='native (default), native-no-comat, adamf, mean, '
                                           'rotate, ... (as in experiment)')
    p.add_argument('--space', type=path_arg,
                   help="search space YAML (config key -> {type: float|int|categorical, "
                        "low, high, log, choices}); default: the variant's")
    p.add_argument('--epochs', type=int, help='per-trial budget (training.epochs)')
    p.add_argument('--eval-every', type=int, help='validation (and pruning) every N epochs')
    p.add_argument('--pruner', default='median', choices=['median', 'halving', 'none'])
    p.add_argument('--seed', type=int, default=0, help="the sampler's seed")
    p.add_argument('--quiet', action='store_true', help="no progress bars inside trials")
    p.add_argument('--tracker', choices=TRACKERS,
                   help='a result tracker per trial, under OUT/trials/<number>/<name>')
    add_threads_arg(p)
    p.set_defaults(func=cmd_tune)


def cmd_tune(args) -> int:
    import importlib.util
    if importlib.util.find_spec('optuna') is None:
        raise CLIError("native-pyg tune needs Optuna: pip install 'native_pyg[tune]' "
                       "(or pip install optuna)")
    from native_pyg.tuning import tune
    if args.trials < 1:
        raise CLIError(f"--trials {args.trials}: expected a positive number of trials")
    sets = []
    if args.epochs is not None:
        sets.append(f'training.epochs={args.epochs}')
    if args.eval_every is not None:
        sets.append(f'training.eval_every={args.eval_every}')
    try:
        base = base_config(args).override(sets)
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None
    check_output_dir(args.out, '--out')
    use_threads(base.training.threads)
    try:
        result = tune(config=base, out=args.out, trials=args.trials, variant=args.variant,
                      space=args.space, pruner=args.pruner, seed=args.seed,
                      progress=not args.quiet, tracker=args.tracker)
    except ValueError as e:
        raise CLIError(str(e)) from None
    except OSError as e:
        raise CLIError(os_error_message(e)) from None
    print(f"best valid MRR {100 * result.best_valid_mrr:.2f} %; its config: "
          f"{os.path.join(args.out, 'best.yaml')} (native-pyg train --config it --out DIR); "
          f"study: {os.path.join(args.out, 'study.db')}")
    return 0
