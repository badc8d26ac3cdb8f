"""``native-pyg train``: a run directory that never loses a previous run,
and an interruption that says how to continue."""
from __future__ import annotations

import os
import shlex
import shutil

from native_pyg.cli.errors import CLIError
from native_pyg.cli.options import distributed, load, run_config, use_threads
from native_pyg.cli.paths import check_output_dir, write_json_atomic
from native_pyg.data.os_errors import os_error_message


def cmd_train(args) -> int:
    from native_pyg.pipeline import build_model
    from native_pyg.training.distributed import main_first
    from native_pyg.training.runs import (RunDirectoryError, RunLock, prepare_run_dir,
                                          replacing_run)
    run = run_config(args)  # every key's range and choices checked
    use_threads(run.training.threads)
    info = distributed(run.training.device)
    created = False
    if info.is_main:  # before the data loads: a bad --out costs one line, not minutes
        created = check_output_dir(args.out, '--out')
    try:
        with main_first(info):  # rank 0 processes the dataset into its cache first
            data = load(run)
        try:
            model = build_model(data, run)
        except ValueError as e:
            raise CLIError(str(e)) from None
        if not info.is_main:  # rank 0 owns --out: its lock, checks and files
            with main_first(info):
                pass
            _train(args, run, data, model, info)
            return 0
        try:
            with RunLock(args.out):
                with main_first(info):
                    prepare_run_dir(args.out, args.resume, args.overwrite)
                with replacing_run(args.out, args.overwrite):
                    _train(args, run, data, model, info)
        except RunDirectoryError as e:
            raise CLIError(str(e)) from None
    finally:  # a run that failed before writing anything leaves no empty --out
        if created and os.path.isdir(args.out) and set(os.listdir(args.out)) <= {'.lock'}:
            shutil.rmtree(args.out, ignore_errors=True)
    return 0


def _train(args, run, data, model, info) -> None:
    from native_pyg.evaluation import format_metrics
    from native_pyg.pipeline import final_metrics
    from native_pyg.training.trained_setup import describe_setup, trained_setup
    from native_pyg.training import NonFiniteLossError, Trainer
    try:
        trainer = Trainer(model, data, run, out_dir=args.out)
    except (ValueError, ImportError) as e:  # e.g. no neighbour-sampling backend
        raise CLIError(str(e)) from None
    if args.resume:
        last = os.path.join(args.out, 'last.pt')
        if not os.path.exists(last):
            raise CLIError(f"--resume: no checkpoint at {last}")
        try:
            trainer.resume(last, allow_changes=args.allow_config_changes)
        except (ValueError, RuntimeError) as e:
            raise CLIError(str(e)) from None
        if info.is_main:
            print(f"resumed from {last} at epoch {trainer.epoch}")
        for change in trainer.config_log[-1:]:
            if change['epoch'] == trainer.epoch and info.is_main:
                print('applied config changes: ' + ', '.join(
                    f"{c['key']} {c['old']!r} -> {c['new']!r}" for c in change['changes']))
    if info.is_main:  # what trains, also when quiet: nothing changes silently
        print(describe_setup(trained_setup(trainer), run.dataset), flush=True)
    if not args.quiet and info.is_main:
        print(model if not info.enabled else f"{model}\non {info.world_size} processes "
              f"(torch.distributed), batch {run.training.batch_size} per process")
    trackers = _trackers(args, run) if info.is_main else []
    trainer.epoch_callbacks.extend(trackers)
    try:
        trainer.fit()
    except NonFiniteLossError as e:
        raise CLIError(str(e)) from None
    except OSError as e:  # a full disk, a directory made read-only meanwhile
        last = os.path.join(args.out, 'last.pt')
        kept = f"; {last} still holds the last complete epoch" if os.path.exists(last) else ''
        raise CLIError(f"{os_error_message(e)}{kept}") from None
    finally:
        for tracker in trackers:
            tracker.close()
    metrics = final_metrics(trainer, run.training.progress)
    if not info.is_main:
        return
    write_json_atomic(os.path.join(args.out, 'metrics.json'), metrics)
    print(f"{run.dataset} test (filtered, {metrics['test']['ties']} ties)")
    print(format_metrics(metrics['test']))
    print(f"checkpoint: {os.path.join(args.out, 'model.pt')}; metrics: "
          f"{os.path.join(args.out, 'metrics.json')}; curves: {os.path.join(args.out, 'curves.png')}")


def _trackers(args, run) -> list:
    """The ``--tracker`` trackers, writing under ``OUT/tracking/<name>``, the
    run's config logged."""
    from native_pyg.training.trackers import make_tracker
    out = []
    for name in dict.fromkeys(args.tracker or []):
        try:
            tracker = make_tracker(name, os.path.join(args.out, 'tracking', name),
                                   run_name=os.path.basename(os.path.abspath(args.out)))
        except ValueError as e:
            raise CLIError(f"--tracker {e}") from None
        tracker.log_config(run.to_dict())
        out.append(tracker)
    return out


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
