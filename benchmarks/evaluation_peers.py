"""Filtered evaluation of the MKG-Y test split: this library's evaluator vs PyKEEN's.

    python benchmarks/evaluation_peers.py --root DIR [--dim 250]

DIR holds ``MKG-Y/raw/*2id.txt`` (the real MKG-Y triples; 2,663 test
triples = 5,326 queries against 15,000 entities, filtered with train, valid
and test). The model is NativE at the paper settings (RotatE, dim 250 = 500
reals) with stand-in image (383-d) and text (384-d) features at the released
coverage (14,244 and 12,305 entities), initialised with a fixed seed: every
variant ranks the same scores. Variants, each in its own process:

* ``native``: :class:`~native_pyg.evaluation.LinkPredictionEvaluator`
  (queries grouped by relation, each distinct query scored once);
* ``native-compiled``: the same with ``compile=True`` (the distances by a
  :func:`torch.compile` kernel); reported twice: the first evaluation of the
  process (it compiles, or loads PyTorch's on-disk cache) and a second one;
* ``pykeen``: PyKEEN's ``RankBasedEvaluator`` (filtered, ``batch_size``
  queries per call) on a PyKEEN ``Model`` that returns this model's scores.

Realistic ties in both (the mean of the optimistic and pessimistic rank);
the driver checks that the MRR, MR and Hits@10 of the variants agree.
PyKEEN is a benchmark-only extra (``pip install -e '.[bench]'``).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import compare, load_mkgy, machine, peak_rss_mb, run_child  # noqa: E402

VARIANTS = ('native', 'native-compiled', 'pykeen')


def build(args):
    import torch
    from native_pyg.data import build_mmkg, split_triples
    from native_pyg.nn import NativE
    data = load_mkgy(args.root)
    n, r = data['entity'].num_nodes, data.num_relations
    g = torch.Generator().manual_seed(0)
    features, masks = {}, {}
    for m, d, have in (('image', 383, 14244), ('text', 384, 12305)):
        masks[m] = torch.zeros(n, dtype=torch.bool)
        masks[m][torch.randperm(n, generator=g)[:have]] = True
        features[m] = torch.randn(n, d, generator=g) * masks[m].unsqueeze(1)
    splits = [split_triples(data, s) for s in ('train', 'valid', 'test')]
    data = build_mmkg(n, r, *splits, features=features, masks=masks)
    torch.manual_seed(0)
    model = NativE.from_data(data, hidden_channels=args.dim, margin=4.0).eval()
    return data, model, splits


def native(args, compile_: bool) -> dict:
    from native_pyg.evaluation import LinkPredictionEvaluator
    data, model, (_, _, test) = build(args)
    ev = LinkPredictionEvaluator.from_data(data, batch_size=args.batch_size,
                                           **({'compile': True} if compile_ else {}))
    start = time.perf_counter()
    metrics = ev.evaluate(model, test)
    out = {'seconds': round(time.perf_counter() - start, 2)}
    if compile_:
        start = time.perf_counter()
        ev.evaluate(model, test)
        out = {'seconds_first_call': out['seconds'],
               'seconds': round(time.perf_counter() - start, 2)}
    return {**out, 'mrr': metrics['both']['mrr'], 'mr': metrics['both']['mr'],
            'hits@10': metrics['both']['hits@10']}


def pykeen(args) -> dict:
    import torch
    from pykeen.evaluation import RankBasedEvaluator
    from pykeen.models.base import Model
    from pykeen.triples import CoreTriplesFactory
    data, native_model, (train, valid, test) = build(args)
    factory = CoreTriplesFactory.create(train, num_entities=data['entity'].num_nodes,
                                        num_relations=data.num_relations)

    class Scores(Model):
        """A PyKEEN model answering with the NativE model's scores."""
        def __init__(self):
            super().__init__(triples_factory=factory)
            self.native = native_model

        def _reset_parameters_(self):
            pass

        def _get_entity_len(self, mode=None):
            return None

        def collect_regularization_term(self):
            return torch.zeros(())

        def score_hrt(self, hrt_batch, **kwargs):
            return self.native(*hrt_batch.t()).unsqueeze(-1)

        def score_t(self, hr_batch, tails=None, **kwargs):
            return self.native.score_tails(hr_batch[:, 0], hr_batch[:, 1])

        def score_h(self, rt_batch, heads=None, **kwargs):
            return self.native.score_heads(rt_batch[:, 0], rt_batch[:, 1])

        def score_r(self, ht_batch, relations=None, **kwargs):
            raise NotImplementedError

    model = Scores().eval()
    evaluator = RankBasedEvaluator(filtered=True)
    start = time.perf_counter()
    with torch.no_grad(), native_model.cached_entities():
        result = evaluator.evaluate(model, test, batch_size=args.batch_size, use_tqdm=False,
                                    additional_filter_triples=[train, valid])
    seconds = round(time.perf_counter() - start, 2)
    return {'seconds': seconds,
            'mrr': result.get_metric('both.realistic.inverse_harmonic_mean_rank'),
            'mr': result.get_metric('both.realistic.arithmetic_mean_rank'),
            'hits@10': result.get_metric('both.realistic.hits_at_10')}


def child(args) -> dict:
    if args.only == 'pykeen':
        try:
            out = pykeen(args)
        except ImportError as e:
            return {'error': f'{e} (pip install -e ".[bench]")'}
    else:
        out = native(args, args.only == 'native-compiled')
    return {**out, 'peak_rss_mb': peak_rss_mb()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--root', required=True)
    p.add_argument('--dim', type=int, default=250)
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--variants', default=','.join(VARIANTS))
    p.add_argument('--only', choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if run_child(args, child):
        return
    results = compare(__file__, args.variants.split(','), sys.argv[1:], 'seconds')
    ok = [r for r in results if 'mrr' in r]
    agree = all(abs(r['mrr'] - ok[0]['mrr']) < 1e-6 and abs(r['mr'] - ok[0]['mr']) < 1e-2
                and abs(r['hits@10'] - ok[0]['hits@10']) < 1e-6 for r in ok)
    print(json.dumps({'dataset': 'MKG-Y test (real triples), 5,326 filtered queries',
                      'model': f'NativE, RotatE dim {args.dim}, image + text stand-ins',
                      'ties': 'realistic', 'metrics_agree': agree, 'machine': machine(),
                      'results': results}, indent=1))


if __name__ == '__main__':
    main()
