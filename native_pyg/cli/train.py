"""``native-pyg train``: a run directory that never loses a previous run,
and an interruption that says how to continue."""
from __future__ import annotations

import argparse
import os
import shlex
import shutil

from native_pyg.cli.errors import CLIError
from native_pyg.cli.loading import load
from native_pyg.cli.options import (COMPILE_HELP, TrainJob, add_config_args, add_out_arg,
                                    add_threads_arg, train_job)
from native_pyg.cli.paths import check_output_dir, write_json_atomic
from native_pyg.cli.process import join_process_group, use_threads
from native_pyg.data.os_errors import os_error_message

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
    job = train_job(args)  # every key's range and choices checked
    use_threads(job.run.training.threads)
    info = join_process_group(job.run.training.device)
    created = False
    if info.is_main:  # before the data loads: a bad --out costs one line, not minutes
        created = check_output_dir(job.out, '--out')
    try:
        _train(job, info)
    finally:  # a run that failed before writing anything leaves no empty --out
        if created and os.path.isdir(job.out) and set(os.listdir(job.out)) <= {'.lock'}:
            shutil.rmtree(job.out, ignore_errors=True)
    return 0


def _train(job: TrainJob, info) -> None:
    """The run of ``job``: its data and model, trained into its folder."""
    from native_pyg.pipeline import build_model, final_metrics, run_folder
    from native_pyg.training import NonFiniteLossError, Trainer, setup_process
    from native_pyg.training.distributed import main_first
    from native_pyg.training.runs import RunDirectoryError
    run = job.run
    with main_first(info):  # rank 0 processes the dataset into its cache first
        data = load(run)
    try:
        model = build_model(data, run)
    except ValueError as e:
        raise CLIError(str(e)) from None
    try:
        with run_folder(job.out, job.resume, job.overwrite, ('--resume', '--overwrite'), info):
            # determinism and the seed; the threads were chosen as the command started
            setup_process(run.training, threads=False)
            try:
                trainer = Trainer(model, data, run, out_dir=job.out)
            except (ValueError, ImportError) as e:  # e.g. no neighbour-sampling backend
                raise CLIError(str(e)) from None
            trackers = _start(trainer, job, info)
            try:
                trainer.fit()
            except NonFiniteLossError as e:
                raise CLIError(str(e)) from None
            except OSError as e:  # a full disk, a directory made read-only meanwhile
                last = os.path.join(job.out, 'last.pt')
                kept = (f"; {last} still holds the last complete epoch" if os.path.exists(last)
                        else '')
                raise CLIError(f"{os_error_message(e)}{kept}") from None
            finally:
                for tracker in trackers:
                    tracker.close()
            metrics = final_metrics(trainer, run.training.progress)
            if info.is_main:
                _report(job, metrics)
    except RunDirectoryError as e:
        raise CLIError(str(e)) from None


def _start(trainer, job: TrainJob, info) -> list:
    """What comes before the first epoch: ``--resume`` from the folder's
    ``last.pt``; on rank 0, the lines that say what trains, and the
    ``--tracker`` trackers (returned), writing under ``OUT/tracking/<name>``."""
    from native_pyg.training.trackers import make_tracker
    from native_pyg.training.trained_setup import describe_setup, trained_setup
    if job.resume:
        last = os.path.join(job.out, 'last.pt')
        if not os.path.exists(last):
            raise CLIError(f"--resume: no checkpoint at {last}")
        try:
            trainer.resume(last, allow_changes=job.allow_config_changes)
        except (ValueError, RuntimeError) as e:
            raise CLIError(str(e)) from None
        if info.is_main:
            print(f"resumed from {last} at epoch {trainer.epoch}")
        for change in trainer.config_log[-1:]:
            if change['epoch'] == trainer.epoch and info.is_main:
                print('applied config changes: ' + ', '.join(
                    f"{c['key']} {c['old']!r} -> {c['new']!r}" for c in change['changes']))
    if not info.is_main:
        return []
    run = job.run
    # what trains, also when quiet: nothing changes silently
    print(describe_setup(trained_setup(trainer), run.dataset), flush=True)
    if not job.quiet:
        print(trainer.model if not info.enabled else f"{trainer.model}\non {info.world_size} "
              f"processes (torch.distributed), batch {run.training.batch_size} per process")
    trackers = []
    for name in job.trackers:
        try:
            tracker = make_tracker(name, os.path.join(job.out, 'tracking', name),
                                   run_name=os.path.basename(os.path.abspath(job.out)))
        except ValueError as e:
            raise CLIError(f"--tracker {e}") from None
        tracker.log_config(run.to_dict())
        trackers.append(tracker)
    trainer.epoch_callbacks.extend(trackers)
    return trackers


def _report(job: TrainJob, metrics: dict) -> None:
    """Writes ``metrics.json`` and says how the run did on test, and where
    its files are."""
    from native_pyg.evaluation import format_metrics
    out = job.out
    write_json_atomic(os.path.join(out, 'metrics.json'), metrics)
    print(f"{job.run.dataset} test (filtered, {metrics['test']['ties']} ties)")
    print(format_metrics(metrics['test']))
    print(f"checkpoint: {os.path.join(out, 'model.pt')}; metrics: "
          f"{os.path.join(out, 'metrics.json')}; curves: {os.path.join(out, 'curves.png')}")


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
