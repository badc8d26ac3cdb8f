"""``native-pyg export``: a run whose entity table was sharded over
processes (``train --shard-table``) consolidated into one ordinary
checkpoint, for ``evaluate`` and ``predict`` on one machine."""
from __future__ import annotations

import argparse
import os.path as osp

from native_pyg.cli.errors import CLIError
from native_pyg.cli.options import add_out_arg
from native_pyg.cli.paths import check_output_file, path_arg
from native_pyg.data.os_errors import os_error_message

HELP = 'consolidate a sharded run (train --shard-table) into one checkpoint for evaluate/predict'


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``export``'s options: the sharded checkpoint and the file written."""
    p.add_argument('--checkpoint', required=True, type=path_arg,
                   help="the run folder (its model.pt, else last.pt) or a checkpoint file")
    add_out_arg(p, 'the consolidated checkpoint (a new file: nothing is replaced)')
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from native_pyg.training.checkpoint import save_checkpoint
    from native_pyg.training.table_shards import consolidate
    path = args.checkpoint
    if osp.isdir(path):
        found = [osp.join(path, n) for n in ('model.pt', 'last.pt')
                 if osp.exists(osp.join(path, n))]
        if not found:
            raise CLIError(f"--checkpoint {path}: holds neither model.pt nor last.pt")
        path = found[0]
    check_output_file(args.out, '--out')
    try:
        state = consolidate(path)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        raise CLIError(str(e).strip().splitlines()[0]) from None
    try:
        save_checkpoint(state, args.out)
    except OSError as e:
        raise CLIError(os_error_message(e, args.out)) from None
    joined = state['exported_from']
    tables = ', '.join(f"{rows:,} x {dim}" for rows, dim in joined['tables'].values())
    print(f"{args.out}: {path}, its table ({tables}) joined from {joined['world_size']} "
          f"shards, epoch {state.get('weights_epoch')}; evaluate it with: native-pyg evaluate "
          f"--checkpoint {args.out}")
    return 0
