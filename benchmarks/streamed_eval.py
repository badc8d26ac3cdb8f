"""Streamed filtered evaluation of a NativE (image + text read from the disk
store, untrained: the cost does not depend on the weights) on a graph of
:func:`~native_pyg.datasets.large_synthetic.generate_large_mmkg`; prints one
JSON line, with ``--profile`` the functions that took the most time.

    python benchmarks/streamed_eval.py --graph DIR --triples 100 [--compile] [--profile] \
        [--checkout OTHER_CHECKOUT]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os.path as osp
import pstats
import sys
import time

CHECKOUT = '--checkout' in sys.argv and sys.argv[sys.argv.index('--checkout') + 1]
# the code measured: this checkout, or another one (e.g. an older commit's worktree)
sys.path.insert(0, CHECKOUT or osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--graph', required=True)
    p.add_argument('--triples', type=int, default=100, help='test triples (2 queries each)')
    p.add_argument('--dim', type=int, default=100)
    p.add_argument('--compile', action='store_true')
    p.add_argument('--profile', action='store_true')
    p.add_argument('--checkout', help='measure the native_pyg of another checkout')
    args = p.parse_args(argv)
    import torch
    from native_pyg.data.schema import split_edges, split_triples
    from native_pyg.datasets.large_synthetic import load_large_mmkg
    from native_pyg.evaluation import StreamingLinkPredictionEvaluator, sample_queries
    from native_pyg.nn import NativE
    from native_pyg.nn.stored_inputs import StoredEntityInputs
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data, store = load_large_mmkg(args.graph)
    edge_index, edge_type = split_edges(data, 'train')
    model = NativE(data['entity'].num_nodes, data.num_relations, args.dim,
                   inputs=StoredEntityInputs(store, data.num_relations),
                   edge_index=edge_index, edge_type=edge_type, margin=6.0)
    evaluator = StreamingLinkPredictionEvaluator.from_data(data, compile=args.compile)
    test = sample_queries(split_triples(data, 'test'), args.triples, seed=0)
    profile = cProfile.Profile() if args.profile else None
    start = time.perf_counter()
    if profile:
        profile.enable()
    metrics = evaluator.evaluate(model, test)
    if profile:
        profile.disable()
    seconds = time.perf_counter() - start
    out = {'entities': int(data['entity'].num_nodes), 'queries': 2 * int(test.size(0)),
           'relations_queried': int(test[:, 1].unique().numel()), 'compile': args.compile,
           'seconds': round(seconds, 1), 'queries_per_second': round(2 * test.size(0) / seconds, 2),
           'mrr': metrics['both']['mrr']}
    if profile:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats('tottime').print_stats(12)
        out['profile'] = [line.strip() for line in text.getvalue().splitlines()
                          if line.strip() and line.strip()[0].isdigit()][:12]
    print(json.dumps(out))


if __name__ == '__main__':
    main()
