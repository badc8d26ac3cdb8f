"""``native-pyg stats``: the data report of a dataset, with its modality
coverage as a bar chart or the whole report as JSON on request."""
from __future__ import annotations

import argparse

from native_pyg.cli.errors import CLIError
from native_pyg.cli.loading import load
from native_pyg.cli.options import add_dataset_args, data_sets
from native_pyg.cli.paths import check_output_file, path_arg, write_json_atomic

HELP = 'print the data report of a dataset'


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``stats``' options: the dataset's, and where the plot and JSON go."""
    add_dataset_args(p)
    p.add_argument('--plot', metavar='PNG', type=path_arg, help='save a modality-coverage bar chart')
    p.add_argument('--json', metavar='PATH', type=path_arg, help='save the report as JSON')
    p.set_defaults(func=cmd_stats)


def cmd_stats(args) -> int:
    from native_pyg.config import RunConfig
    from native_pyg.data import report
    from native_pyg.builders import user_feature_store
    for path, option in ((args.plot, '--plot'), (args.json, '--json')):
        if path:
            check_output_file(path, option)
    try:
        run = RunConfig(dataset=args.dataset, root=args.root).override(data_sets(args))
    except ValueError as e:
        raise CLIError(str(e)) from None
    data = load(run)
    try:  # the features lie in a store: its masks and dimensions, checked as training does
        store = user_feature_store(run, data)
    except ValueError as e:
        raise CLIError(str(e)) from None
    rep = report(data, verbose=True, feature_store=store)
    if args.plot:
        rep.plot_coverage(args.plot)
        print(f"coverage plot written to {args.plot}")
    if args.json:
        write_json_atomic(args.json, rep.to_dict(), '--json', replace=False)
        print(f"report written to {args.json}")
    return 0
