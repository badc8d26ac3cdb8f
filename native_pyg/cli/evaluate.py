"""``native-pyg evaluate``: a trained checkpoint ranked on a split, all of
it or a seeded sample, filtered, by one of the protocols."""
from __future__ import annotations

import argparse

from native_pyg.cli.errors import CLIError
from native_pyg.cli.loading import restore
from native_pyg.cli.options import COMPILE_HELP, add_restore_args, add_root_arg
from native_pyg.cli.paths import check_output_file, path_arg, write_json_atomic
from native_pyg.cli.process import join_process_group, use_threads

HELP = 'filtered link-prediction metrics of a checkpoint'


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``evaluate``'s options: the checkpoint, the split and how it is ranked."""
    p.add_argument('--checkpoint', required=True, type=path_arg)
    p.add_argument('--split', default='test', choices=['valid', 'test'])
    p.add_argument('--ties', default='realistic', choices=['realistic', 'optimistic',
                                                           'pessimistic'])
    p.add_argument('--device', help="'auto' (default), 'cpu' or 'cuda'")
    p.add_argument('--compile', action='store_true', help=COMPILE_HELP)
    p.add_argument('--protocol', choices=['full', 'streamed', 'sampled'],
                   help="'full' 1-vs-all ranking (default), 'streamed' (the same ranks over "
                        "candidate chunks, bounded memory; default for a disk feature store) or "
                        "'sampled' (--num-candidates filtered candidates per query)")
    p.add_argument('--num-candidates', type=int, default=1000,
                   help='candidates per query of --protocol sampled (default: 1000)')
    p.add_argument('--eval-sample', type=int, metavar='N',
                   help='rank N seeded random triples of the split, with 95 %% confidence '
                        'intervals')
    p.add_argument('--sample-seed', type=int, default=0, help='seed of --eval-sample')
    p.add_argument('--out', type=path_arg, help='write the metrics as JSON here')
    add_root_arg(p)
    add_restore_args(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from native_pyg.data import split_triples
    from native_pyg.evaluation import format_metrics
    from native_pyg.evaluation.protocols import AUTO, Protocol, evaluator_for
    from native_pyg.evaluation.query_subsets import evaluate_sample
    from native_pyg.training.distributed import main_first, sharded_ranks
    if args.out:  # before minutes of ranking, not after
        check_output_file(args.out, '--out')
    use_threads(args.threads)
    info = join_process_group(args.device)
    with main_first(info):
        loaded = restore(args.checkpoint, args.root, args.device or 'auto', args.feature_store)
    run, data, model = loaded.run, loaded.data, loaded.model
    protocol = Protocol.resolve(args.protocol or AUTO, model.inputs.store is not None).value
    try:
        ev = evaluator_for(data, protocol, args.num_candidates, ties=args.ties,
                           progress=info.is_main, compile=args.compile)
    except ValueError as e:
        raise CLIError(str(e)) from None
    triples = split_triples(data, args.split)
    if args.eval_sample is not None:
        if args.eval_sample < 1:
            raise CLIError(f"--eval-sample must be a positive number of triples, "
                           f"got {args.eval_sample}")
        if info.enabled:
            raise CLIError("--eval-sample ranks a subset in one process; run it without torchrun")
        metrics = evaluate_sample(ev, model, triples, args.eval_sample, args.sample_seed)
    else:
        ranks = sharded_ranks(lambda part: ev.ranks(model, part), triples, info)
        metrics = ev.metrics_from_ranks(triples, *ranks)
    if not info.is_main:
        return 0
    metrics.update(ev.protocol_fields())  # the protocol, as training's metrics.json records it
    what = ev.describe()
    if 'sampled_queries' in metrics:
        what += f", {metrics['sampled_queries']} of {metrics['total_queries']} triples"
    print(f"{run.dataset} {args.split} (filtered, {what})")
    print(format_metrics(metrics))
    if 'ci95' in metrics:
        ci = metrics['ci95']
        print(f"95 % confidence half-widths: MRR +-{100 * ci['mrr']:.2f} %, "
              f"H@10 +-{100 * ci['hits@10']:.2f} %")
    if args.out:
        write_json_atomic(args.out, metrics, '--out', replace=False)
        print(f"metrics written to {args.out}")
    return 0
