"""``native-pyg stats``, ``convert-features`` and ``experiment``."""
from __future__ import annotations

import os

from native_pyg.cli.errors import CLIError
from native_pyg.cli.options import (base_config, data_sets, given_keys, load, seeds,
                                    use_threads)
from native_pyg.cli.paths import check_output_dir, check_output_file, write_json_atomic
from native_pyg.data.os_errors import os_error_message


def cmd_stats(args) -> int:
    from native_pyg.data import report
    from native_pyg.training import RunConfig
    for path, option in ((args.plot, '--plot'), (args.json, '--json')):
        if path:
            check_output_file(path, option)
    try:
        run = RunConfig(dataset=args.dataset, root=args.root).override(data_sets(args))
    except ValueError as e:
        raise CLIError(str(e)) from None
    data = load(run)
    from native_pyg.feature_placement import user_feature_store
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


def cmd_convert_features(args) -> int:
    from native_pyg.data.feature_files import convert_feature_files
    files, masks = {}, {}
    for pair in args.files:
        modality, sep, path = pair.partition('=')
        if not sep or not modality or not path:
            raise CLIError(f"{pair!r}: expected MODALITY=PATH or MODALITY.mask=PATH, e.g. "
                           f"image=image.npy")
        modality, dot, kind = modality.partition('.')
        if dot and kind != 'mask':
            raise CLIError(f"{pair!r}: expected MODALITY=PATH or MODALITY.mask=PATH")
        target = masks if dot else files
        if modality in target:
            raise CLIError(f"{'the mask of ' if dot else ''}modality {modality!r} given twice")
        target[modality] = os.path.expanduser(path)
    if not files:
        raise CLIError("no feature file given (MODALITY=PATH, e.g. image=image.npy)")
    if args.chunk_rows < 1:
        raise CLIError(f"--chunk-rows {args.chunk_rows}: expected a positive number of rows")
    try:
        store = convert_feature_files(args.out, files, args.dtype, args.chunk_rows,
                                      progress=not args.quiet, masks=masks)
    except ValueError as e:
        raise CLIError(str(e)) from None
    except OSError as e:  # e.g. a full disk: a write's error names no file
        raise CLIError(os_error_message(e, e.filename or args.out)) from None
    print(f"{store!r}: {store.nbytes() / 2**20:,.2f} MiB on disk")
    return 0


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
