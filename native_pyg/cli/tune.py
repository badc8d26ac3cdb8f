"""``native-pyg tune``: an Optuna study of a variant's config (see
:mod:`native_pyg.tuning`)."""
from __future__ import annotations

import os

from native_pyg.cli.errors import CLIError
from native_pyg.cli.options import base_config, use_threads
from native_pyg.cli.paths import check_output_dir
from native_pyg.data.os_errors import os_error_message


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
