"""The ``native-pyg`` command.

Every failure a user can cause or fix ends in one line on stderr and exit
code 2 (:class:`~native_pyg.cli.errors.CLIError`, an :class:`OSError` on a
path the command reads or writes); Ctrl-C ends in one line saying how to
continue, exit code 130, and SIGTERM the same, exit code 143; under
``torchrun`` only rank 0 speaks.

One module per command (``stats``, ``train``, ``experiment``, ``tune``,
``convert_features``, ``evaluate``, ``complete``, ``predict``), each with its
help line, its options and what it does; the parser that gathers them
(:mod:`~native_pyg.cli.parser`); and what several commands share: their
errors (:mod:`~native_pyg.cli.errors`), the paths they read and write
(:mod:`~native_pyg.cli.paths`), the options they share and the run config
made of them (:mod:`~native_pyg.cli.options`), the setup of their process
(:mod:`~native_pyg.cli.process`) and the data and checkpoints they read
(:mod:`~native_pyg.cli.loading`).

May import every other part of :mod:`native_pyg`; only ``python -m native_pyg``
(``native_pyg/__main__.py``) imports it.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from typing import List, NoReturn, Optional

# nothing heavy at import: a Ctrl-C while torch loads (seconds) must reach main's handler
from native_pyg.cli.errors import CLIError, distributed_rank

__all__ = ['main', 'build_parser', 'CLIError']


def __getattr__(name: str):
    if name == 'build_parser':
        from native_pyg.cli.parser import build_parser
        return build_parser
    raise AttributeError(f"module 'native_pyg.cli' has no attribute {name!r}")

#: exit code of a process ended by SIGINT (128 + 2), as shells report it
INTERRUPTED = 130
#: exit code of a process ended by SIGTERM (128 + 15)
TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the same one line saying how to continue."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def _say(message: str) -> None:
    """One line on stderr, from rank 0 only under ``torchrun``."""
    if not distributed_rank():  # None (no torchrun) or rank 0
        print(f"native-pyg: {message}", file=sys.stderr)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as ``native-pyg: warning: ...``, without the source line."""
    return f"native-pyg: warning: {message}\n"


def main(argv: Optional[List[str]] = None) -> int:
    previous = None
    if threading.current_thread() is threading.main_thread():  # a kill says how to resume
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    except KeyboardInterrupt as e:  # while the command's modules were still loading
        _say("interrupted")
        return TERMINATED if isinstance(e, Terminated) else INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run(argv: Optional[List[str]] = None) -> NoReturn:
    """The ``native-pyg`` command: :func:`main`, then the process's exit
    (after a torchrun run, through
    :func:`~native_pyg.training.distributed.exit_process`)."""
    code = main(argv)
    if 'torch' in sys.modules:
        from native_pyg.training.distributed import exit_process
        exit_process(code)
    sys.exit(code)


def _main(argv: Optional[List[str]]) -> int:
    from native_pyg.cli.parser import build_parser
    from native_pyg.cli.train import interrupted_message
    from native_pyg.data.os_errors import os_error_message
    warnings.formatwarning = _one_line_warning
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # no command: the usage with the command list
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    args.argv = argv  # what --resume hints repeat
    code = 2
    try:
        code = args.func(args)
    except CLIError as e:
        _say(f"error: {e}")
    except OSError as e:  # a path written or read: read-only, full, vanished
        _say(f"error: {os_error_message(e)}")
    except KeyboardInterrupt as e:
        code = TERMINATED if isinstance(e, Terminated) else INTERRUPTED
        _say(interrupted_message(args) if args.command == 'train' and os.path.isdir(args.out)
             else "interrupted")
    except RuntimeError as e:
        from native_pyg.training.distributed import PeerFailed
        if not isinstance(e, PeerFailed):
            raise
        code = 2  # rank 0 failed a check this rank waited on, and said why
    finally:
        if 'torch' in sys.modules:  # leave a torchrun process group cleanly
            from native_pyg.training.distributed import finish
            finish(ok=code == 0)
    return code
