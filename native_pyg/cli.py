"""The ``native-pyg`` command."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


class _Parser(argparse.ArgumentParser):
    """Bad arguments give one clear line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


class CLIError(Exception):
    """An error the user can fix; printed as one line, exit code 2."""


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--dataset', default='synthetic',
                   help='synthetic, DB15K, MKG-W, MKG-Y, TIVA or KVC16K (default: synthetic)')
    p.add_argument('--root', default=None,
                   help='dataset root; WildKGC files go to ROOT/<name>/{raw,processed}')


def cmd_stats(args) -> int:
    from native_pyg.data import report
    ds = _load(args.dataset, args.root)
    rep = report(ds[0], verbose=True)
    if args.plot:
        rep.plot_coverage(args.plot)
        print(f"coverage plot written to {args.plot}")
    if args.json:
        import json
        with open(args.json, 'w') as f:
            json.dump(rep.to_dict(), f, indent=2)
        print(f"report written to {args.json}")
    return 0


def _load(name: str, root: Optional[str]):
    from native_pyg.datasets import load_dataset
    try:
        return load_dataset(name, root)
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog='native-pyg', description='Multi-modal KG completion in the wild.')
    sub = parser.add_subparsers(dest='command', required=True, parser_class=_Parser)
    p = sub.add_parser('stats', help='print the data report of a dataset')
    _add_dataset_args(p)
    p.add_argument('--plot', metavar='PNG', help='save a modality-coverage bar chart')
    p.add_argument('--json', metavar='PATH', help='save the report as JSON')
    p.set_defaults(func=cmd_stats)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CLIError as e:
        print(f"native-pyg: error: {e}", file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
