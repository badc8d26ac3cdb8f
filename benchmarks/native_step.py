"""NativE training steps at the MKG-Y paper settings: unique-entity embedding vs per-row projection.

    python benchmarks/native_step.py --root DIR [--steps 3] [--negatives 128] [--device auto]

DIR holds ``MKG-Y/raw/*2id.txt`` (the real MKG-Y triples). Every entity gets
stand-in image (4096-d) and text (768-d) features (random: this measures
speed). Settings of the paper for MKG-Y: RotatE, dim 250 (500 reals), batch
1024, 128 Bernoulli negatives, CoMAT on (mu 1e-4), L2 regulariser 1e-5.
Variants, each in its own process (peak memory its own), one warm-up step
then the median of ``--steps``:

* ``native``: this library; every distinct entity of a step is projected
  and its logits computed once, rows index them;
* ``per-row``: the same model and step, but every row (each head, tail and
  negative) projects its raw features itself, as the reference code does,
  which makes a step project ``B x (K + 2)`` feature rows instead of at most
  ``N``. The ratio of the two is the saving of the unique-entity design.

Prints one JSON object.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import compare, load_mkgy, machine, memory, run_child, timed  # noqa: E402

VARIANTS = ('native', 'per-row')


def per_row(model):
    """Makes ``model`` embed every row on its own (no distinct-entity sharing)."""
    import torch

    def embed_rows(*indices):
        indices = [torch.as_tensor(i, device=model.device).long() for i in indices]
        flat = torch.cat([i.reshape(-1) for i in indices])
        emb, mask = model.modality_embeddings(flat)
        rows = torch.arange(flat.numel(), device=flat.device)
        return emb, mask, [p.view(i.shape) for p, i in
                           zip(rows.split([i.numel() for i in indices]), indices)]

    model.embed_entities = embed_rows  # this instance only


def child(args) -> dict:
    import itertools
    import torch
    from native_pyg.pipeline import build_model
    from native_pyg.training import RunConfig, Trainer
    data = load_mkgy(args.root, {'image': 4096, 'text': 768})
    run = RunConfig.from_dict({
        'model': {'hidden_channels': args.dim, 'margin': 4.0},
        'training': {'batch_size': args.batch_size, 'num_negatives': args.negatives,
                     'lr': 1e-4, 'mu': 1e-4, 'regul_rate': 1e-5, 'adversarial': True,
                     'eval_every': 0, 'progress': False, 'device': args.device}})
    trainer = Trainer(build_model(data, run), data, run)
    if args.only == 'per-row':
        per_row(trainer.model)
    batches = list(itertools.islice(trainer.steps, args.steps + 1))
    sync = torch.cuda.synchronize if trainer.device.type == 'cuda' else (lambda: None)
    trainer.train_step(batches[0])  # warm-up
    it = iter(batches[1:])

    def step():
        trainer.train_step(next(it))
        sync()

    return {**timed(step, args.steps), 'device': str(trainer.device), **memory(trainer.device)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--root', required=True)
    p.add_argument('--dim', type=int, default=250)
    p.add_argument('--negatives', type=int, default=128)
    p.add_argument('--batch-size', type=int, default=1024)
    p.add_argument('--steps', type=int, default=3)
    p.add_argument('--device', default='auto')
    p.add_argument('--variants', default=','.join(VARIANTS))
    p.add_argument('--only', choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if run_child(args, child):
        return
    results = compare(__file__, args.variants.split(','), sys.argv[1:], 'seconds_median')
    print(json.dumps({'dataset': 'MKG-Y (real triples, stand-in 4096-d image + 768-d text)',
                      'dim': args.dim, 'batch_size': args.batch_size,
                      'negatives': args.negatives, 'comat': True, 'regul_rate': 1e-5,
                      'measure': 'seconds per training step', 'machine': machine(),
                      'results': results}, indent=1))


if __name__ == '__main__':
    main()
