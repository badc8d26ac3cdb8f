"""The ``native-pyg`` argument parser: the commands in the order ``--help``
lists them, each declaring its own options in its module
(``native_pyg/cli/<command>.py``: ``HELP``, ``add_arguments``)."""
from __future__ import annotations

import argparse

from native_pyg.cli import (complete, convert_features, evaluate, experiment, export,
                            featurize, predict, stats, train, tune)

#: every command by name, in the order of ``native-pyg --help``
COMMANDS = {'stats': stats, 'train': train, 'experiment': experiment, 'tune': tune,
            'featurize': featurize, 'convert-features': convert_features, 'evaluate': evaluate,
            'export': export, 'complete': complete, 'predict': predict}


class Parser(argparse.ArgumentParser):
    """Bad arguments give one clear line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from native_pyg import __version__
    parser = Parser(prog='native-pyg', description='Multi-modal KG completion in the wild.')
    parser.add_argument('--version', action='version', version=f'native-pyg {__version__}')
    sub = parser.add_subparsers(dest='command', required=True, parser_class=Parser)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.HELP))
    return parser
