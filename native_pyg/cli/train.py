"""``native-pyg train``: a run directory that never loses a previous run,
and an interruption that says how to continue."""
from __future__ import annotations

import argparse
import os
import shlex

from native_pyg.cli.errors import CLIError
from native_pyg.cli.options import (COMPILE_HELP, add_config_args, add_out_arg, add_threads_arg,
                                    train_job)

HELP = 'train NativE (or a structure-only baseline)'


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``train``'s options: the config's, shortcuts for common keys, and
    what to do with the run folder."""
    from native_pyg.training.trackers import TRACKERS
    add_config_args(p, 'YAML config (examples/configs/<dataset>.yaml)',
                    'override a config key, e.g. --set training.lr=1e-3 (repeatable)')
    p.add_argument('--modalities', help="comma-separated modalities, or 'none' for structure only")
    p.add_argument('--scorer', help='rotate (default), transe, distmult or complex')
    p.add_argument('--no-adversarial', action='store_true', help='train without CoMAT')
    p.add_argument('--epochs', type=int, help='override training.epochs')
    p.add_argument('--device', help="'auto' (default), 'cpu' or 'cuda'")
    p.add_argument('--encoder', choices=['none', 'rgcn', 'compgcn'],
                   help='structural encoder: none (embedding table, default), rgcn or compgcn')
    p.add_argument('--num-neighbors', metavar='K1,K2',
                   help="neighbours sampled per hop for a GNN encoder, e.g. 10,5 (-1 = all); "
                        "'full' = the whole training graph every step (default)")
    p.add_argument('--shard-table', action='store_true',
                   help='under torchrun: the entity table sharded row-wise over the processes '
                        '(TorchRec, fused row-wise Adagrad; model.table=sharded, '
                        'training.table_optimizer=rowwise_adagrad)')
    add_out_arg(p, 'output directory (checkpoints, metrics)')
    p.add_argument('--resume', action='store_true', help='continue from OUT/last.pt')
    p.add_argument('--overwrite', action='store_true',
                   help='replace the run already in OUT (it is kept until the new run '
                        'writes its first checkpoint)')
    p.add_argument('--allow-config-changes', action='store_true',
                   help='with --resume: apply config changes beyond epochs, eval_every, '
                        'patience and progress (e.g. training.lr)')
    p.add_argument('--quiet', action='store_true',
                   help='no progress bars or per-epoch lines, only the final metrics')
    p.add_argument('--deterministic', action='store_true',
                   help='one thread and deterministic algorithms: bit-identical reruns')
    p.add_argument('--compile', action='store_true', help=COMPILE_HELP)
    p.add_argument('--tracker', action='append', choices=TRACKERS,
                   help='log config, losses, validation metrics, seconds per epoch and modality '
                        'weights per relation under OUT/tracking/<name> (repeatable)')
    add_threads_arg(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    """Parses the options into a :class:`~native_pyg.training_job.TrainingJob`
    (every key's range and choices checked) and hands it on
    (:func:`~native_pyg.training_job.run_training_job`)."""
    from native_pyg.training.runs import RunDirectoryError
    from native_pyg.training_job import JobError, run_training_job
    job = train_job(args)
    try:
        run_training_job(job)
    except (JobError, RunDirectoryError) as e:
        raise CLIError(str(e)) from None
    return 0


def interrupted_message(args) -> str:
    """What Ctrl-C during ``train`` tells the user: where the run stands and
    the command that continues it."""
    last = os.path.join(args.out, 'last.pt')
    if not os.path.exists(last):
        return (f"interrupted before the first checkpoint; nothing to resume in {args.out} "
                f"(a run it held before is kept)")
    argv = [a for a in args.argv if a not in ('--overwrite', '--resume')]
    command = ' '.join(shlex.quote(a) for a in ['native-pyg', *argv, '--resume'])
    return f"interrupted; {last} holds the last complete epoch; continue with: {command}"
