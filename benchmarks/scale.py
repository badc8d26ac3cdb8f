"""NativE on a large synthetic MMKG whose features stay on disk, against the
same steps on a 15,000-entity graph of the same kind; prints one JSON line.

    python benchmarks/scale.py --entities 300000 --image-dim 4096 --text-dim 384 \\
        --steps 10 --root DIR [--encoder rgcn --num-neighbors 10,5]

Generates (or reuses) both graphs under DIR with
:func:`~native_pyg.datasets.large_synthetic.generate_large_mmkg` (image and
text rows in fp16 on disk), then, in one child process per graph (so each
peak RSS is its own): NativE with image + text read through
:class:`~native_pyg.nn.stored_inputs.StoredEntityInputs`, CoMAT on, a
sparse entity table with row-wise Adagrad and negatives shared by the batch;
``--steps`` timed training steps after two warm-up steps; then a filtered
evaluation of ``--eval-queries`` test triples (head and tail queries), full
ranking streamed over candidate chunks (or ``--eval-protocol sampled``).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.dirname(HERE))
sys.path.insert(0, HERE)
from _harness import peak_rss_bytes  # noqa: E402


def graph_dir(root: str, entities: int, args) -> str:
    return osp.join(root, f'mmkg-{entities}-img{args.image_dim}-txt{args.text_dim}-s{args.seed}')


def generate(args, entities: int) -> str:
    from native_pyg.datasets.large_synthetic import generate_large_mmkg
    path = graph_dir(args.root, entities, args)
    generate_large_mmkg(path, entities, image_dim=args.image_dim, text_dim=args.text_dim,
                        seed=args.seed, progress=not args.quiet)
    return path


def measure(args) -> dict:
    """One graph's figures (runs in its own process)."""
    import torch
    from native_pyg.data.schema import split_edges, split_triples
    from native_pyg.datasets.large_synthetic import load_large_mmkg
    from native_pyg.evaluation import (SampledLinkPredictionEvaluator,
                                       StreamingLinkPredictionEvaluator, sample_queries)
    from native_pyg.nn import NativE
    from native_pyg.nn.stored_inputs import StoredEntityInputs
    from native_pyg.pipeline import encoder_arguments
    from native_pyg.training import RunConfig, Trainer
    from native_pyg.training.process import setup_process

    path = graph_dir(args.root, args.only, args)
    start = time.perf_counter()
    data, store = load_large_mmkg(path)
    run = RunConfig().override([
        f'model.hidden_channels={args.dim}', 'model.margin=6.0',
        f'model.encoder={args.encoder}', f'training.batch_size={args.batch_size}',
        f'model.num_blocks={args.num_blocks or "null"}',
        f'training.num_negatives={args.negatives}',
        f'training.shared_negatives={args.batch_size}',
        f'training.table_optimizer={args.table_optimizer}', 'training.lr=1e-3',
        'training.eval_every=0', 'training.progress=false', 'training.adversarial=true',
        'training.dedupe_train=false',  # the generator writes distinct training triples
        f'training.num_neighbors={args.num_neighbors or "null"}', 'training.device=cpu'])
    inputs = StoredEntityInputs(store, data.num_relations)
    edge_index, edge_type = split_edges(data, 'train')
    model = NativE(data['entity'].num_nodes, data.num_relations, args.dim, inputs=inputs,
                   edge_index=edge_index, edge_type=edge_type, margin=6.0,
                   sparse=args.table_optimizer != 'adam', **encoder_arguments(run.model))
    # one filter of known triples, shared by the trainer and the measured evaluation
    evaluator = (StreamingLinkPredictionEvaluator.from_data(
        data, candidate_chunk=args.candidate_chunk, compile=args.compile)
        if args.eval_protocol == 'full' else
        SampledLinkPredictionEvaluator.from_data(data, num_candidates=1000, compile=args.compile))
    setup_process(run.training, threads=False)  # seeds, as a run does
    trainer = Trainer(model, data, run, evaluator=evaluator)
    setup = time.perf_counter() - start
    steps, distinct, nodes = [], [], []
    it = iter(trainer.steps)
    for i in range(args.steps + 2):
        batch = next(it)
        t0 = time.perf_counter()
        trainer.train_step(batch)
        if i >= 2:  # two warm-up steps
            steps.append(time.perf_counter() - t0)
            distinct.append(int(torch.unique(torch.cat([
                batch.pos[:, 0], batch.pos[:, 2], batch.neg.flatten()])).numel()))
            if batch.n_id is not None:
                nodes.append(int(batch.n_id.numel()))
    step = statistics.median(steps)
    train_rss = peak_rss_bytes()
    out = {'entities': int(data['entity'].num_nodes),
           'train_triples': int(split_triples(data, 'train').size(0)),
           'feature_bytes_on_disk': store.nbytes(), 'setup_seconds': round(setup, 1),
           'step_seconds': round(step, 4),
           'positives_per_second': round(args.batch_size / step, 1),
           'distinct_entities_per_step': int(statistics.median(distinct))}
    if nodes:
        out['entities_per_subgraph'] = int(statistics.median(nodes))
    if args.eval_queries:
        test = sample_queries(split_triples(data, 'test'), args.eval_queries, seed=0)
        t0 = time.perf_counter()
        metrics = evaluator.evaluate(model, test)
        secs = time.perf_counter() - t0
        out.update({'eval_protocol': args.eval_protocol, 'eval_triples': int(test.size(0)),
                    'eval_seconds': round(secs, 2),
                    'eval_queries_per_second': round(2 * test.size(0) / secs, 1),
                    'eval_mrr': round(metrics['both']['mrr'], 4)})
    out['peak_rss_bytes'] = peak_rss_bytes()
    out['train_peak_rss_bytes'] = train_rss
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--entities', type=int, default=300_000)
    p.add_argument('--reference-entities', type=int, default=15_000)
    p.add_argument('--image-dim', type=int, default=4096)
    p.add_argument('--text-dim', type=int, default=384)
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--root', required=True, help='where the graphs are generated (or reused)')
    p.add_argument('--dim', type=int, default=100)
    p.add_argument('--batch-size', type=int, default=1024)
    p.add_argument('--negatives', type=int, default=128)
    p.add_argument('--table-optimizer', default='rowwise_adagrad')
    p.add_argument('--encoder', default='none', choices=['none', 'rgcn', 'compgcn'])
    p.add_argument('--num-neighbors', default=None, help='e.g. 10,5 (with --encoder)')
    p.add_argument('--num-blocks', type=int, default=None,
                   help="R-GCN's block-diagonal weights (default: full weights)")
    p.add_argument('--eval-queries', type=int, default=1000,
                   help='test triples evaluated (0: none)')
    p.add_argument('--eval-protocol', default='full', choices=['full', 'sampled'])
    p.add_argument('--candidate-chunk', type=int, default=8192,
                   help='candidates per chunk of the streamed evaluation')
    p.add_argument('--compile', action='store_true',
                   help='1-vs-all distances by torch.compile (needs a C++ compiler)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--quiet', action='store_true')
    p.add_argument('--only', type=int, help=argparse.SUPPRESS)  # child: measure one graph
    args = p.parse_args(argv)
    args.root = osp.abspath(osp.expanduser(args.root))
    if args.num_neighbors:
        args.num_neighbors = '[' + args.num_neighbors + ']'
    if args.only is not None:
        print(json.dumps(measure(args)))
        return
    for n in (args.reference_entities, args.entities):
        generate(args, n)
    child = list(argv if argv is not None else sys.argv[1:])
    results = {}
    for n in (args.reference_entities, args.entities):
        proc = subprocess.run([sys.executable, osp.abspath(__file__), *child, '--only', str(n)],
                              capture_output=True, text=True, env={**os.environ})
        if proc.returncode:
            sys.exit(f"{n} entities: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
        results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    big, ref = results[args.entities], results[args.reference_entities]
    out = {**big, 'reference_entities': ref['entities'],
           'reference_step_seconds': ref['step_seconds'],
           'step_ratio': round(big['step_seconds'] / ref['step_seconds'], 3),
           'rss_to_feature_bytes': round(big['peak_rss_bytes'] / big['feature_bytes_on_disk'], 3),
           'reference_peak_rss_bytes': ref['peak_rss_bytes'],
           'settings': {'dim': args.dim, 'batch_size': args.batch_size,
                        'negatives': args.negatives, 'shared_negatives': args.batch_size,
                        'table_optimizer': args.table_optimizer, 'encoder': args.encoder,
                        'num_blocks': args.num_blocks,
                        'num_neighbors': args.num_neighbors, 'image_dim': args.image_dim,
                        'text_dim': args.text_dim, 'comat': True, 'steps': args.steps,
                        'compile': args.compile, 'candidate_chunk': args.candidate_chunk,
                        'threads': __import__('torch').get_num_threads()}}
    print(json.dumps(out))


if __name__ == '__main__':
    main()
