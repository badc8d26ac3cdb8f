"""Throughput of GNN-encoder NativE training steps: neighbour-sampled vs full graph.

    python benchmarks/gnn_throughput.py --root DIR [--encoder rgcn] [--steps 5] [--device auto]

DIR holds ``MKG-Y/raw/*2id.txt`` (the real MKG-Y triples: 15,000 entities,
28 relations, 21,310 training triples). Every entity gets stand-in image
(4096-d) and text (768-d) features (random: this measures speed, not
accuracy). For each setting (``num_neighbors`` 5,5 / 10,5 / 25,10 and the
full graph) one child process trains ``--steps`` steps after one warm-up
step and reports entities and message edges per subgraph, seconds per step,
positive triples per second and its peak resident memory (``ru_maxrss``,
which includes the data and the model). Prints one JSON object.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import load_mkgy, machine, memory, run_child, run_children  # noqa: E402

SETTINGS = {'5,5': [5, 5], '10,5': [10, 5], '25,10': [25, 10], 'full': None}


def child(args) -> dict:
    import torch
    from native_pyg.pipeline import build_model
    from native_pyg.training import RunConfig, Trainer
    from native_pyg.training.process import setup_process
    data = load_mkgy(args.root, {'image': 4096, 'text': 768})
    run = RunConfig.from_dict({
        'model': {'hidden_channels': args.dim, 'margin': 4.0, 'encoder': args.encoder,
                  'num_layers': 2, 'num_bases': 4 if args.encoder == 'rgcn' else None},
        'training': {'batch_size': args.batch_size, 'num_negatives': args.negatives,
                     'lr': 1e-4, 'mu': 1e-4, 'adversarial': True, 'device': args.device,
                     'progress': False, 'num_neighbors': SETTINGS[args.only]}})
    model = build_model(data, run)
    setup_process(run.training, threads=False)  # seeds, as a run does
    trainer = Trainer(model, data, run)
    sync = torch.cuda.synchronize if trainer.device.type == 'cuda' else (lambda: None)
    it = iter(trainer.steps)
    trainer.train_step(next(it))  # warm-up
    nodes, edges, seconds = [], [], 0.0
    for _ in range(args.steps):
        start = time.perf_counter()
        batch = next(it)  # sampling counts: it is part of the step
        trainer.train_step(batch)
        sync()
        seconds += time.perf_counter() - start
        nodes.append(batch.n_id.numel())
        edges.append(batch.edge_index.size(1))
    step = seconds / args.steps
    out = {'num_neighbors': args.only, 'entities_per_subgraph': sum(nodes) / len(nodes),
           'edges_per_subgraph': sum(edges) / len(edges), 'seconds_per_step': round(step, 3),
           'positive_triples_per_s': round(args.batch_size / step, 1),
           **memory(trainer.device)}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--root', required=True)
    p.add_argument('--encoder', default='rgcn', choices=['rgcn', 'compgcn'])
    p.add_argument('--dim', type=int, default=100)
    p.add_argument('--batch-size', type=int, default=1024)
    p.add_argument('--negatives', type=int, default=32)
    p.add_argument('--steps', type=int, default=5)
    p.add_argument('--device', default='auto')
    p.add_argument('--only', choices=list(SETTINGS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if run_child(args, child):
        return
    results = run_children(__file__, list(SETTINGS), sys.argv[1:])
    print(json.dumps({'dataset': 'MKG-Y (real triples, stand-in 4096-d image + 768-d text)',
                      'encoder': args.encoder, 'dim': args.dim, 'batch_size': args.batch_size,
                      'negatives': args.negatives, 'comat': True, 'device': args.device,
                      'machine': machine(), 'results': results}, indent=1))


if __name__ == '__main__':
    main()
