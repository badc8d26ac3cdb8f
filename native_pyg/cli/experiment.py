"""``native-pyg experiment``: one of the paper's experiments, its cells
trained (or only tabulated) under one budget, the table, JSON and plot
written under ``--out``."""
from __future__ import annotations

import argparse
import os

from native_pyg.cli.errors import CLIError
from native_pyg.cli.loading import load
from native_pyg.cli.options import (add_config_args, add_out_arg, add_threads_arg, base_config,
                                    given_keys, seeds)
from native_pyg.cli.paths import check_output_dir
from native_pyg.cli.process import use_threads

HELP = "run one of the paper's experiments (table, JSON and plot under --out)"
#: the budget options with their built-in values (those of Budget)
BUDGET = (('--epochs', int, 100), ('--dim', int, 100), ('--negatives', int, 32),
          ('--lr', float, 1e-3), ('--batch-size', int, 1024), ('--eval-every', int, 25),
          ('--margin', float, 4.0))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``experiment``'s options: which experiment, its budget, and which of
    its cells this process trains."""
    from native_pyg.experiments import EXPERIMENTS
    p.add_argument('name', choices=EXPERIMENTS)
    add_config_args(p, 'YAML config the variants start from')
    add_out_arg(p, 'results directory (finished cells are kept)')
    p.add_argument('--seeds', default='0,1,2', help='comma-separated seeds (default: 0,1,2)')
    for flag, kind, default in BUDGET:
        p.add_argument(flag, type=kind, help=f'every cell (default: the --config or --set '
                                             f'value, else {default:g})')
    p.add_argument('--variants', metavar='V1,V2', help='only these variants, e.g. native,mean')
    p.add_argument('--settings', metavar='S1,S2',
                   help="only these settings, e.g. 'entity' (every entity-level rate) or "
                        "'modality-0.4'")
    p.add_argument('--shard', default='0/1', metavar='I/N',
                   help='train only every N-th cell starting at I, so N processes sharing '
                        '--out split the experiment (default 0/1: all)')
    p.add_argument('--no-train', action='store_true',
                   help="train nothing: tabulate the finished cells in --out (e.g. after "
                        "shards on several machines)")
    add_threads_arg(p)
    p.set_defaults(func=cmd_experiment)


def cmd_experiment(args) -> int:
    from native_pyg.experiments import (Budget, check_budget, check_request, run_experiment,
                                        tabulate)
    try:
        base = base_config(args)
        seed_list = seeds(args.seeds)
        budget = Budget.resolve(dict(epochs=args.epochs, hidden_channels=args.dim,
                                     num_negatives=args.negatives, lr=args.lr,
                                     batch_size=args.batch_size, eval_every=args.eval_every,
                                     margin=args.margin), base, given_keys(args))
        base.override(budget.overrides())  # range checks before any training
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None
    use_threads(base.training.threads)
    split = lambda v: [x.strip() for x in v.split(',') if x.strip()] if v else None  # noqa: E731
    try:
        index, count = (int(x) for x in args.shard.split('/'))
    except ValueError:
        raise CLIError(f"--shard {args.shard!r}: expected I/N, e.g. 0/4") from None
    chosen = dict(variants=split(args.variants), settings=split(args.settings))
    try:  # a bad request fails before the data loads
        check_request(args.name, shard=(index, count), **chosen)
        if not args.no_train:
            check_budget(args.out, budget)
    except ValueError as e:
        raise CLIError(str(e)) from None
    if args.no_train:
        try:
            summary = tabulate(args.name, args.out, None, seed_list, **chosen)
        except ValueError as e:
            raise CLIError(str(e)) from None
    else:
        check_output_dir(args.out, '--out')
        data = load(base)
        summary = run_experiment(args.name, data, args.out, base, budget, seed_list,
                                 shard=(index, count), **chosen)
    print(open(os.path.join(args.out, f'{args.name}.md')).read())
    print(f"{len(summary['rows'])} rows written to {args.out}/{args.name}.{{md,json,png}}")
    return 0
