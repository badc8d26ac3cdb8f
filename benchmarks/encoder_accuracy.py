"""Accuracy of NativE's structural encoders at one budget, variant by variant.

    python benchmarks/encoder_accuracy.py --dataset synthetic --config examples/configs/synthetic.yaml
    python benchmarks/encoder_accuracy.py --dataset MKG-Y --root DIR --modalities none \\
        --dim 100 --negatives 32 --lr 1e-3 --epochs 100 --eval-every 25

Trains each variant with the same budget and data (shallow table, R-GCN,
CompGCN; with feature modalities also the GNN fed with the projected
modality embeddings) and prints one JSON object with filtered test metrics
(realistic ties), the selected epoch and the mean seconds per epoch.
``--modalities none`` compares structure-only models (the WildKGC feature
files are not reachable from every machine). ``--num-neighbors 10,5``
trains the GNN variants on sampled subgraphs instead of the full graph.
"""
import argparse
import json
import time
import warnings

import torch

VARIANTS = {
    'table': [],
    'rgcn': ['model.encoder=rgcn', 'model.num_bases=4'],
    'compgcn': ['model.encoder=compgcn', 'model.composition=sub'],
    'rgcn+modalities': ['model.encoder=rgcn', 'model.num_bases=4',
                        'model.encoder_input=structure+modalities'],
    'compgcn+modalities': ['model.encoder=compgcn', 'model.composition=sub',
                           'model.encoder_input=structure+modalities'],
}


def main():
    from native_pyg.datasets import load_dataset
    from native_pyg.pipeline import build_model
    from native_pyg.training import RunConfig, Trainer
    from native_pyg.training.process import setup_process
    p = argparse.ArgumentParser()
    p.add_argument('--dataset', default='synthetic')
    p.add_argument('--root', default=None)
    p.add_argument('--config', default=None, help='a YAML the budget flags override')
    p.add_argument('--modalities', default=None, help="'none' = structure only")
    p.add_argument('--variants', default=None, help=f'comma-separated subset of {list(VARIANTS)}')
    p.add_argument('--dim', type=int, default=32)
    p.add_argument('--margin', type=float, default=6.0)
    p.add_argument('--negatives', type=int, default=32)
    p.add_argument('--batch-size', type=int, default=512)
    p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--epochs', type=int, default=40)
    p.add_argument('--eval-every', type=int, default=10)
    p.add_argument('--num-layers', type=int, default=2)
    p.add_argument('--num-neighbors', default=None)
    p.add_argument('--no-adversarial', action='store_true')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = load_dataset(args.dataset, args.root)[0]
    structure_only = args.modalities is not None and args.modalities.lower() == 'none'
    names = args.variants.split(',') if args.variants else [
        v for v in VARIANTS if not (structure_only and v.endswith('+modalities'))]
    results = {}
    for name in names:
        sets = [f'model.hidden_channels={args.dim}', f'model.margin={args.margin}',
                f'model.num_layers={args.num_layers}', f'training.epochs={args.epochs}',
                f'training.lr={args.lr}', f'training.lrg={args.lr}',
                f'training.num_negatives={args.negatives}',
                f'training.batch_size={args.batch_size}', f'training.eval_every={args.eval_every}',
                'training.progress=false', f'training.seed={args.seed}', *VARIANTS[name]]
        if structure_only:
            sets.append('model.modalities=[]')
        if args.no_adversarial:
            sets.append('training.adversarial=false')
        if args.num_neighbors and name != 'table':
            sets.append(f'training.num_neighbors=[{args.num_neighbors}]')
        base = RunConfig.from_yaml(args.config) if args.config else RunConfig()
        run = base.override(sets)
        model = build_model(data, run)
        setup_process(run.training, threads=False)  # seeds, as a run does
        trainer = Trainer(model, data, run)
        start = time.perf_counter()
        history = trainer.fit()
        seconds = time.perf_counter() - start
        test = trainer.evaluate('test')['both']
        results[name] = {'mrr': round(100 * test['mrr'], 2), 'mr': round(test['mr'], 1),
                         'hits@1': round(100 * test['hits@1'], 2),
                         'hits@10': round(100 * test['hits@10'], 2),
                         'best_epoch': trainer.best_epoch,
                         'seconds_per_epoch': round(sum(r['seconds'] for r in history)
                                                    / len(history), 2),
                         'wall_seconds': round(seconds, 1)}
        print(json.dumps({name: results[name]}), flush=True)
    print(json.dumps({'dataset': args.dataset, 'config': args.config,
                      'structure_only': structure_only,
                      'budget': {k: getattr(args, k) for k in (
                          'dim', 'negatives', 'batch_size', 'lr', 'epochs', 'eval_every',
                          'num_layers', 'num_neighbors', 'seed')},
                      'adversarial': not args.no_adversarial,
                      'ties': 'realistic', 'threads': torch.get_num_threads(),
                      'results': results}, indent=1))


if __name__ == '__main__':
    main()
