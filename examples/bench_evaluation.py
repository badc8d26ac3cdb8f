"""Times filtered link-prediction evaluation of NativE at the MKG-Y paper settings.

    python examples/bench_evaluation.py [--root DIR] [--device auto] [--batch-size 256]

With ``--root`` holding ``MKG-Y/raw/*2id.txt`` the real MKG-Y test split is
evaluated (15,000 entities, 2,663 test triples, filtering with train + valid +
test); without it random triples of the same shape. The model is NativE at the
paper settings (RotatE, dim 250 = 500 reals) with image (383-d) and text
(384-d) stand-in features at the released coverage (14,244 and 12,305 of
15,000 entities). Prints one JSON line with seconds and queries per second
(2 queries per test triple).
"""
import argparse
import json
import time
import warnings

import torch

from native_pyg.data import build_mmkg, split_triples
from native_pyg.evaluation import LinkPredictionEvaluator
from native_pyg.nn import NativE

p = argparse.ArgumentParser()
p.add_argument('--root', default=None)
p.add_argument('--device', default='auto')
p.add_argument('--batch-size', type=int, default=256)
p.add_argument('--hidden-channels', type=int, default=250)
p.add_argument('--compile', action='store_true', help='torch.compile the CPU distance kernel')
args = p.parse_args()
device = torch.device(('cuda' if torch.cuda.is_available() else 'cpu')
                      if args.device == 'auto' else args.device)

g = torch.Generator().manual_seed(0)
if args.root:
    from native_pyg.datasets import WildKGC
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = WildKGC(args.root, 'MKG-Y', log=False)[0]
    n, r = data['entity'].num_nodes, data.num_relations
    splits = [split_triples(data, s) for s in ('train', 'valid', 'test')]
else:
    n, r = 15000, 28
    splits = [torch.stack([torch.randint(0, n, (e,), generator=g),
                           torch.randint(0, r, (e,), generator=g),
                           torch.randint(0, n, (e,), generator=g)], 1)
              for e in (21310, 2665, 2663)]
features, masks = {}, {}
for m, d, have in (('image', 383, 14244), ('text', 384, 12305)):
    masks[m] = torch.zeros(n, dtype=torch.bool)
    masks[m][torch.randperm(n, generator=g)[:have]] = True
    features[m] = torch.randn(n, d, generator=g) * masks[m].unsqueeze(1)
data = build_mmkg(n, r, *splits, features=features, masks=masks)
model = NativE.from_data(data, hidden_channels=args.hidden_channels, margin=4.0).to(device)
evaluator = LinkPredictionEvaluator.from_data(data, batch_size=args.batch_size,
                                              compile=args.compile)
test = split_triples(data, 'test')

sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
sync()
start = time.perf_counter()
metrics = evaluator.evaluate(model, test)
sync()
secs = time.perf_counter() - start
print(json.dumps({'data': 'MKG-Y' if args.root else 'random MKG-Y shape', 'device': str(device),
                  'compile': args.compile,
                  'threads': torch.get_num_threads(), 'num_queries': 2 * test.size(0),
                  'seconds': round(secs, 2), 'queries_per_s': round(2 * test.size(0) / secs, 1),
                  'mrr_untrained': round(metrics['both']['mrr'], 5)}))
