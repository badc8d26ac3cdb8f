"""``native-pyg complete``: the missing facts a trained checkpoint proposes
for some relations, as a TSV table (see :mod:`native_pyg.completion`)."""
from __future__ import annotations

import argparse
import os

from native_pyg.cli.errors import CLIError
from native_pyg.cli.loading import restore
from native_pyg.cli.options import COMPILE_HELP, add_out_arg, add_restore_args, add_root_arg
from native_pyg.cli.paths import path_arg
from native_pyg.cli.process import use_threads
from native_pyg.data.safe_load import first_line

HELP = ('the missing facts the model proposes, as a TSV table (never a triple train, valid or '
        'test holds)')


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``complete``'s options: the checkpoint, the relations and heads, the table."""
    p.add_argument('--checkpoint', required=True, type=path_arg)
    p.add_argument('--relation', action='append', required=True, metavar='NAME_OR_ID',
                   help='a relation to complete (repeatable)')
    p.add_argument('--heads', type=path_arg, metavar='FILE',
                   help='the heads to complete, one name or id per line (default: every '
                        'entity)')
    p.add_argument('--k', type=int, default=10, help='proposals per (head, relation) '
                                                     '(default: 10)')
    add_out_arg(p, 'the TSV table: head, relation, tail, score, rank and the tail\'s ReDAF '
                   'weights; a killed run continues when rerun')
    add_root_arg(p)
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.add_argument('--compile', action='store_true', help=COMPILE_HELP)
    add_restore_args(p)
    p.set_defaults(func=cmd_complete)


def cmd_complete(args) -> int:
    from native_pyg.completion import complete
    from native_pyg.data.readers import read_name_list
    if args.k < 1:
        raise CLIError(f"--k {args.k}: expected a positive number of proposals")
    heads = None
    if args.heads:
        try:
            heads = read_name_list(args.heads)
        except ValueError as e:
            raise CLIError(f"--heads {e}") from None
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent):
        raise CLIError(f"--out {args.out}: the directory {parent} does not exist")
    use_threads(args.threads)
    loaded = restore(args.checkpoint, args.root, feature_store=args.feature_store)
    try:
        complete(loaded, args.relation, args.out, heads=heads, k=args.k,
                 progress=not args.quiet, source=args.checkpoint, compile=args.compile)
    except ValueError as e:
        raise CLIError(first_line(e)) from None
    print(f"proposals written to {args.out}")
    return 0
