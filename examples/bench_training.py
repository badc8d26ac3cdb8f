"""Time training steps at the paper's DB15K settings (random stand-in features).

    python examples/bench_training.py [--steps 3] [--device auto] [--naive]

DB15K shapes: 12,842 entities, 279 relations, image 4096-d, text 768-d,
numeric 768-d; dim 250 (RotatE: 500 reals), batch 1024, 128 negatives, CoMAT
on. Prints JSON with seconds per step. ``--naive`` also times the reference
code's approach of projecting raw features once per (triple, negative) row
(only the projections, so a lower bound of its step time).
"""
import argparse
import itertools
import json
import time

import torch

from native_pyg.data import build_mmkg
from native_pyg.pipeline import build_model
from native_pyg.training import RunConfig, Trainer
from native_pyg.training.process import setup_process

p = argparse.ArgumentParser()
p.add_argument('--steps', type=int, default=3)
p.add_argument('--device', default='auto')
p.add_argument('--naive', action='store_true')
p.add_argument('--num-negatives', type=int, default=128)
args = p.parse_args()

g = torch.Generator().manual_seed(0)
n, r, e = 12842, 279, 79222
train = torch.stack([torch.randint(0, n, (e,), generator=g), torch.randint(0, r, (e,), generator=g),
                     torch.randint(0, n, (e,), generator=g)], 1)
dims = {'image': 4096, 'text': 768, 'numeric': 768}
features = {m: torch.randn(n, d, generator=g) for m, d in dims.items()}
masks = {m: torch.rand(n, generator=g) < 0.9 for m in dims}
data = build_mmkg(n, r, train, train[:100], train[100:200], features=features, masks=masks)

run = RunConfig.from_dict({'model': {'hidden_channels': 250, 'margin': 12.0},
                           'training': {'batch_size': 1024, 'num_negatives': args.num_negatives,
                                        'lr': 1e-4, 'mu': 1e-4, 'adversarial': True,
                                        'device': args.device, 'progress': False}})
model = build_model(data, run)
setup_process(run.training, threads=False)  # seeds, as a run does
trainer = Trainer(model, data, run)
batches = list(itertools.islice(trainer.steps, args.steps + 1))
trainer.train_step(batches[0])  # warm-up
sync = torch.cuda.synchronize if trainer.device.type == 'cuda' else (lambda: None)
sync()
start = time.perf_counter()
for b in batches[1:1 + args.steps]:
    trainer.train_step(b)
sync()
step = (time.perf_counter() - start) / args.steps
out = {'device': str(trainer.device), 'threads': torch.get_num_threads(), 'batch_size': 1024,
       'num_negatives': args.num_negatives, 'seconds_per_step': round(step, 3),
       'triples_per_s': round(1024 / step, 1),
       'epoch_minutes': round(step * (e // 1024) / 60, 2)}
if args.naive:
    enc = trainer.model.projections
    rows = 1024 * (args.num_negatives + 2)  # head, tail and every negative, per row
    idx = torch.randint(0, n, (rows,), generator=g).to(trainer.device)
    sync()
    start = time.perf_counter()
    projected = {m: enc.encode(m, features[m].to(trainer.device)[idx]) for m in dims}
    sum(v.sum() for v in projected.values()).backward()
    sync()
    out['naive_projection_seconds_per_step'] = round(time.perf_counter() - start, 3)
print(json.dumps(out))
