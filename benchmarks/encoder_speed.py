"""Speed of one GNN layer and of one structure-only training step per encoder.

    python benchmarks/encoder_speed.py --root DIR [--repeats 2]

Layers: PyG's ``RGCNConv`` vs ``EdgewiseRGCNConv`` (same parameters and
output) vs ``CompGCNConv`` at MKG-Y's size (15,000 nodes, 42,620 directed
edges, 56 edge types with inverses, 200 channels, 4 bases): forward and
backward of one layer on random inputs. Steps: one training step on the real
MKG-Y triples under ``DIR/MKG-Y/raw`` (structure only, dim 64, batch 1024, 32
negatives, full graph) with the embedding table, a 2-layer R-GCN and a
2-layer CompGCN. Prints one JSON object (seconds).
"""
import argparse
import itertools
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import load_mkgy  # noqa: E402


def layer_seconds(repeats: int) -> dict:
    from torch_geometric.nn import RGCNConv
    from native_pyg.nn.gnn import CompGCNConv, EdgewiseRGCNConv
    torch.manual_seed(0)
    n, e, r, c = 15000, 21310, 28, 200
    ei = torch.randint(0, n, (2, e))
    et = torch.randint(0, r, (e,))
    ei, et = torch.cat([ei, ei.flip(0)], 1), torch.cat([et, et + r])
    x = torch.randn(n, c, requires_grad=True)
    rel = torch.randn(2 * r, c)
    convs = {'pyg_RGCNConv': RGCNConv(c, c, 2 * r, num_bases=4),
             'EdgewiseRGCNConv': EdgewiseRGCNConv(c, c, 2 * r, num_bases=4),
             'CompGCNConv': CompGCNConv(c, c, r)}
    out = {}
    for name, conv in convs.items():
        run = ((lambda: conv(x, rel, ei, et)[0]) if name == 'CompGCNConv'
               else (lambda: conv(x, ei, et)))
        run().sum().backward()  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            run().sum().backward()
        out[name] = round((time.perf_counter() - start) / repeats, 3)
    return out


def step_seconds(root: str, repeats: int) -> dict:
    from native_pyg.pipeline import build_model
    from native_pyg.training import RunConfig, Trainer
    from native_pyg.training.process import setup_process
    data = load_mkgy(root)
    out = {}
    for encoder in ('none', 'rgcn', 'compgcn'):
        run = RunConfig().override([
            f'model.encoder={encoder}', 'model.num_bases=4', 'model.hidden_channels=64',
            'model.margin=4.0', 'model.modalities=[]', 'training.num_negatives=32',
            'training.batch_size=1024', 'training.progress=false'])
        model = build_model(data, run)
        setup_process(run.training, threads=False)  # seeds, as a run does
        trainer = Trainer(model, data, run)
        steps = list(itertools.islice(trainer.steps, repeats + 1))
        trainer.train_step(steps[0])  # warm-up
        start = time.perf_counter()
        for batch in steps[1:]:
            trainer.train_step(batch)
        out['table' if encoder == 'none' else encoder] = round(
            (time.perf_counter() - start) / repeats, 3)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--root', required=True)
    p.add_argument('--repeats', type=int, default=2)
    args = p.parse_args()
    print(json.dumps({'threads': torch.get_num_threads(),
                      'layer_fwd_bwd_seconds': layer_seconds(args.repeats),
                      'mkgy_structure_only_step_seconds': step_seconds(args.root, args.repeats)},
                     indent=1))


if __name__ == '__main__':
    main()
