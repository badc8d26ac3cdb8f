"""NativE on a 2-layer R-GCN encoder against NativE on the embedding table:
seconds per training step (an epoch is the same number of steps for both).

    python benchmarks/gnn_epoch.py --root DIR [--dataset MKG-Y] [--steps 5] [--interleaved]
    python benchmarks/gnn_epoch.py --root DIR [--dataset MKG-Y] --epochs 3 [--set KEY=VALUE]

DIR holds ``<dataset>/raw/*2id.txt`` (the real WildKGC triples: MKG-Y or
DB15K). The settings of the ``main`` experiment table (``docs/results.md``):
dim 100 (RotatE: 200 reals), batch 1024, 32 Bernoulli negatives, CoMAT on,
lr 1e-3, margin 4; R-GCN with 4 bases over the whole training graph. Every
entity gets a stand-in 384-d text feature (as text from names; random: this
measures speed). Variants: ``native`` (the table), ``native-rgcn``, and
both with ``training.shared_negatives=128`` and
``training.in_batch_negatives=32`` (``-shared``: a step reads about 3,000
distinct entities instead of nearly all), and both under
``training.precision=bf16`` (``-bf16``: the forward pass's products in
bf16, fast on CPUs with bf16 instructions). Each variant runs in its own
process (its peak memory its own): one warm-up step, then the median of
``--steps``; with ``--interleaved`` all run in this process, one step of
each in turn, and each gets the median over rounds of its step over the
table's step of the same round (``paired_ratio_to_native``), which a
machine whose speed drifts between processes leaves intact, and
``ratio_of_totals_to_native``. With ``--epochs N`` whole epochs
(``train_epoch``: the sampling and every step) are timed instead, one of
each variant in turn in this process. Prints one JSON object with each
variant's ratio to the table's step (or epoch).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import (SHARED_NEGATIVES, interleaved_epochs, load_mkgy, machine,  # noqa: E402
                      memory, run_child, step_results, timed_steps, trainers_in_process)

RGCN = ['model.encoder=rgcn', 'model.num_bases=4']
BF16 = ['training.precision=bf16']
VARIANTS = {'native': [], 'native-rgcn': RGCN,
            'native-shared': SHARED_NEGATIVES, 'native-rgcn-shared': RGCN + SHARED_NEGATIVES,
            'native-bf16': BF16, 'native-rgcn-bf16': RGCN + BF16}


def load_data(args):
    return load_mkgy(args.root, {'text': 384}, name=args.dataset)


def build_trainer(args, variant: str, data=None):
    from native_pyg.pipeline import build_model
    from native_pyg.training import RunConfig, Trainer
    from native_pyg.training.process import setup_process
    data = data if data is not None else load_data(args)
    run = RunConfig.from_dict({
        'model': {'hidden_channels': 100, 'margin': 4.0},
        'training': {'batch_size': 1024, 'num_negatives': 32, 'lr': 1e-3, 'adversarial': True,
                     'eval_every': 0, 'progress': False, 'device': args.device}})
    run = run.override(VARIANTS[variant] + list(args.set))
    model = build_model(data, run)
    setup_process(run.training, threads=False)  # seeds, as a run does
    return Trainer(model, data, run)


def child(args) -> dict:
    trainer = build_trainer(args, args.only)
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
    p.add_argument('--interleaved', action='store_true',
                   help='all variants in this process, one step of each in turn')
    p.add_argument('--epochs', type=int, default=0,
                   help='time this many whole epochs of each variant, one of each in turn, '
                        'in this process (instead of steps)')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='a setting for every variant (e.g. training.cpu_blas=numpy)')
    p.add_argument('--only', choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if run_child(args, child):
        return
    if args.epochs:
        results = interleaved_epochs(trainers_in_process(args, load_data, build_trainer),
                                     args.epochs)
    else:
        results = step_results(__file__, args, load_data, build_trainer)
    print(json.dumps({'dataset': f'{args.dataset} (real triples, stand-in 384-d text)',
                      'settings': 'dim 100, batch 1024, 32 negatives, CoMAT, R-GCN 2 layers 4 bases',
                      'set': args.set,
                      'measure': f"seconds per training {'epoch' if args.epochs else 'step'}",
                      'machine': machine(), 'results': results}, indent=1))


if __name__ == '__main__':
    main()
