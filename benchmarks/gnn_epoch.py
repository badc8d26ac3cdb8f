"""NativE on a 2-layer R-GCN encoder against NativE on the embedding table:
seconds per training step (an epoch is the same number of steps for both).

    python benchmarks/gnn_epoch.py --root DIR [--dataset MKG-Y] [--steps 5]

DIR holds ``<dataset>/raw/*2id.txt`` (the real WildKGC triples: MKG-Y or
DB15K). The settings of the ``main`` experiment table (``docs/results.md``):
dim 100 (RotatE: 200 reals), batch 1024, 32 Bernoulli negatives, CoMAT on,
lr 1e-3, margin 4; R-GCN with 4 bases over the whole training graph. Every
entity gets a stand-in 384-d text feature (as text from names; random: this
measures speed). Each variant runs in its own process: one warm-up step,
then the median of ``--steps``. Prints one JSON object with each variant's
ratio to the table's step.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import compare, load_mkgy, machine, memory, run_child, timed_steps  # noqa: E402

RGCN = ['model.encoder=rgcn', 'model.num_bases=4']
SHARED = ['training.shared_negatives=128', 'training.in_batch_negatives=32']
VARIANTS = {'native': [], 'native-rgcn': RGCN,
            'native-shared': SHARED, 'native-rgcn-shared': RGCN + SHARED}


def child(args) -> dict:
    from native_pyg.pipeline import build_model
    from native_pyg.training import RunConfig, Trainer
    data = load_mkgy(args.root, {'text': 384}, name=args.dataset)
    run = RunConfig.from_dict({
        'model': {'hidden_channels': 100, 'margin': 4.0},
        'training': {'batch_size': 1024, 'num_negatives': 32, 'lr': 1e-3, 'adversarial': True,
                     'eval_every': 0, 'progress': False, 'device': args.device}})
    run = run.override(VARIANTS[args.only])
    trainer = Trainer(build_model(data, run), data, run)
    steps_per_epoch = len(trainer.steps) if hasattr(trainer.steps, '__len__') else None
    return {**timed_steps(trainer, args.steps), 'steps_per_epoch': steps_per_epoch,
            **memory(trainer.device)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--root', required=True)
    p.add_argument('--dataset', default='MKG-Y', choices=['MKG-Y', 'DB15K'])
    p.add_argument('--steps', type=int, default=5)
    p.add_argument('--device', default='auto')
    p.add_argument('--variants', default=','.join(VARIANTS))
    p.add_argument('--only', choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if run_child(args, child):
        return
    results = compare(__file__, args.variants.split(','), sys.argv[1:], 'seconds_median')
    print(json.dumps({'dataset': f'{args.dataset} (real triples, stand-in 384-d text)',
                      'settings': 'dim 100, batch 1024, 32 negatives, CoMAT, R-GCN 2 layers 4 bases',
                      'measure': 'seconds per training step', 'machine': machine(),
                      'results': results}, indent=1))


if __name__ == '__main__':
    main()
