"""Structure-only RotatE training epochs: native_pyg vs PyKEEN vs PyG's ``nn.kge``.

    python benchmarks/structure_peers.py --root DIR [--epochs 3] [--dim 100] [--negatives 32]

DIR holds ``MKG-Y/raw/*2id.txt`` (the real MKG-Y triples: 15,000 entities,
28 relations, 21,310 training triples, 21,286 distinct). Every variant
trains RotatE (complex dimension ``--dim``) with Adam (lr ``--lr``), batch
``--batch-size``, on the distinct training triples, and times whole epochs
(``--epochs`` after one warm-up epoch, median and minimum), each in its own
process so that its peak resident memory is its own:

* ``native``: this library, ``--negatives`` Bernoulli negatives per positive
  (filtered: known triples are redrawn), self-adversarial (NSSA) loss;
  ``native-regul``: the same plus the L2 regulariser at 1e-5;
* ``pykeen``: PyKEEN's ``RotatE`` with its ``SLCWATrainingLoop``, Bernoulli
  negatives (``num_negs_per_pos``, unfiltered) and ``NSSALoss``;
* ``pyg``: ``torch_geometric.nn.kge.RotatE`` with its own loader and loss
  (one random negative per positive and a binary loss: less work per epoch);
* ``pyg-negatives``: the same PyG module scoring this library's Bernoulli
  negatives with the NSSA loss (the same work as ``native``).

PyKEEN is a benchmark-only extra (``pip install -e '.[bench]'``); without it
the ``pykeen`` row reports the import error. Prints one JSON object with the
ratios of every peer's median epoch to ``native``'s.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import compare, load_mkgy, machine, peak_rss_mb, run_child, timed  # noqa: E402

VARIANTS = ('native', 'native-regul', 'pykeen', 'pyg', 'pyg-negatives')


def _triples(data):
    import torch
    from native_pyg.data import split_triples
    return torch.unique(split_triples(data, 'train'), dim=0)


def native(args, data, regul: float) -> dict:
    from native_pyg.pipeline import build_model
    from native_pyg.training import RunConfig, Trainer
    from native_pyg.training.process import setup_process
    run = RunConfig.from_dict({
        'model': {'hidden_channels': args.dim, 'margin': args.margin, 'modalities': []},
        'training': {'batch_size': args.batch_size, 'num_negatives': args.negatives,
                     'lr': args.lr, 'regul_rate': regul, 'adversarial': False,
                     'eval_every': 0, 'progress': False, 'device': 'cpu'}})
    model = build_model(data, run)
    setup_process(run.training, threads=False)  # seeds, as a run does
    trainer = Trainer(model, data, run)
    trainer.train_epoch()  # warm-up
    return timed(trainer.train_epoch, args.epochs)


def pykeen(args, data) -> dict:
    import torch
    from pykeen.losses import NSSALoss
    from pykeen.models import RotatE
    from pykeen.training import SLCWATrainingLoop
    from pykeen.triples import CoreTriplesFactory
    tf = CoreTriplesFactory.create(_triples(data), num_entities=data['entity'].num_nodes,
                                   num_relations=data.num_relations)
    model = RotatE(triples_factory=tf, embedding_dim=args.dim, random_seed=0,
                   loss=NSSALoss(margin=args.margin, adversarial_temperature=2.0))
    loop = SLCWATrainingLoop(model=model, triples_factory=tf,
                             optimizer=torch.optim.Adam(model.parameters(), lr=args.lr),
                             negative_sampler='bernoulli',
                             negative_sampler_kwargs={'num_negs_per_pos': args.negatives})
    kw = dict(batch_size=args.batch_size, use_tqdm=False, use_tqdm_batch=False)
    done = [1]
    loop.train(tf, num_epochs=1, **kw)  # warm-up

    def epoch():  # num_epochs is the total to reach: one more each call
        done[0] += 1
        loop.train(tf, num_epochs=done[0], continue_training=True, **kw)
        assert loop._epoch == done[0], (loop._epoch, done[0])

    return timed(epoch, args.epochs)


def pyg(args, data, own_loss: bool) -> dict:
    import torch
    from torch_geometric.nn.kge import RotatE
    from native_pyg.training import LOSSES, BernoulliNegativeSampler
    train = _triples(data)
    n, num_rel = data['entity'].num_nodes, data.num_relations
    model = RotatE(n, num_rel, hidden_channels=args.dim, margin=args.margin)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    h, r, t = train.unbind(1)
    loader = model.loader(head_index=h, rel_type=r, tail_index=t,
                          batch_size=args.batch_size, shuffle=True)
    sampler = BernoulliNegativeSampler(train, n, num_rel, args.negatives)

    def loss_with_negatives(hb, rb, tb):
        neg, flip = sampler.sample(torch.stack([hb, rb, tb], 1))
        k = neg.size(1)
        flip = flip.view(-1, 1).expand(-1, k)
        heads = torch.where(flip, neg, hb.view(-1, 1)).reshape(-1)
        tails = torch.where(flip, tb.view(-1, 1), neg).reshape(-1)
        neg_s = model(heads, rb.repeat_interleave(k), tails).view(-1, k)
        return LOSSES['self_adversarial'](model(hb, rb, tb), neg_s, 2.0)

    def epoch():
        for hb, rb, tb in loader:
            opt.zero_grad()
            loss = model.loss(hb, rb, tb) if own_loss else loss_with_negatives(hb, rb, tb)
            loss.backward()
            opt.step()

    epoch()  # warm-up
    return timed(epoch, args.epochs)


def child(args) -> dict:
    data = load_mkgy(args.root)
    if args.only in ('native', 'native-regul'):
        out = native(args, data, 1e-5 if args.only == 'native-regul' else 0.0)
    elif args.only == 'pykeen':
        try:
            out = pykeen(args, data)
        except ImportError as e:
            return {'error': f'{e} (pip install -e ".[bench]")'}
    else:
        out = pyg(args, data, own_loss=args.only == 'pyg')
    return {**out, 'peak_rss_mb': peak_rss_mb()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--root', required=True)
    p.add_argument('--dim', type=int, default=100)
    p.add_argument('--negatives', type=int, default=32)
    p.add_argument('--batch-size', type=int, default=1024)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--margin', type=float, default=4.0)
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--variants', default=','.join(VARIANTS))
    p.add_argument('--only', choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if run_child(args, child):
        return
    results = compare(__file__, args.variants.split(','), sys.argv[1:], 'seconds_median')
    print(json.dumps({'dataset': 'MKG-Y (real triples)', 'model': 'RotatE, structure only',
                      'dim': args.dim, 'negatives': args.negatives,
                      'batch_size': args.batch_size, 'lr': args.lr, 'measure': 'seconds per epoch',
                      'machine': machine(), 'results': results}, indent=1))


if __name__ == '__main__':
    main()
