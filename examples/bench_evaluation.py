"""Times the filtered link-prediction evaluator at MKG-Y scale.

A random RotatE-like model (15,000 entities, complex dimension 250 = 500 real
numbers, 28 relations, a relation-dependent entity table recomputed on every
call the way ReDAF's fused embeddings are) is scored 1-vs-all on 2,663 random
test triples, with ~26k known triples for filtering. Prints one JSON line:

    {"num_queries": ..., "seconds": ..., "queries_per_s": ..., ...}

``num_queries`` counts head and tail queries (2 per test triple);
``score_seconds`` is the time spent inside the model's scoring calls and
``overhead_seconds`` the rest (grouping, filtering, ranking, metrics).

    python examples/bench_evaluation.py [--device cuda] [--batch-size 256] [--scorer dot] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch import Tensor

from native_pyg.evaluation import LinkPredictionEvaluator


class RandomRotatE(torch.nn.Module):
    r"""RotatE-like scorer with a relation-dependent entity table:

    .. math::
        \mathbf{e}^{(r)} = \mathbf{e} \odot (1 + \tanh g_r),\qquad
        S(h, r, t) = \gamma - \sum_k |(\mathbf{h}^{(r)} \circ \mathbf{r})_k - \mathbf{t}^{(r)}_k|

    Scores are computed in blocks of queries x entities so that temporaries
    stay in cache and memory stays bounded.
    """
    def __init__(self, num_entities: int, num_relations: int, dim: int, gamma: float = 4.0,
                 query_block: int = 8, entity_block: int = 256):
        super().__init__()
        self.dim, self.gamma = dim, gamma
        self.query_block, self.entity_block = query_block, entity_block
        self.entity = torch.nn.Embedding(num_entities, 2 * dim)
        self.phase = torch.nn.Embedding(num_relations, dim)
        self.gate = torch.nn.Embedding(num_relations, 2 * dim)
        bound = (gamma + 2.0) / dim
        torch.nn.init.uniform_(self.entity.weight, -bound, bound)
        torch.nn.init.uniform_(self.phase.weight, -math.pi, math.pi)
        torch.nn.init.normal_(self.gate.weight, std=0.1)

    def _entities(self, rel_type: Tensor) -> Tensor:
        # one relation per call (the evaluator groups queries by relation)
        r = rel_type[:1]
        assert bool((rel_type == r).all()), 'a call mixed relations'
        return self.entity.weight * (1 + torch.tanh(self.gate(r)))

    def _distance(self, q_re: Tensor, q_im: Tensor, ent: Tensor) -> Tensor:
        e_re, e_im = ent[:, :self.dim], ent[:, self.dim:]
        out = q_re.new_empty(q_re.size(0), ent.size(0))
        qb, eb = self.query_block, self.entity_block
        for i in range(0, q_re.size(0), qb):
            for j in range(0, ent.size(0), eb):
                d_re = q_re[i:i + qb, None] - e_re[None, j:j + eb]
                d_im = q_im[i:i + qb, None] - e_im[None, j:j + eb]
                out[i:i + qb, j:j + eb] = d_re.square_().add_(d_im.square_()).sqrt_().sum(-1)
        return self.gamma - out

    def score_tails(self, head_index: Tensor, rel_type: Tensor) -> Tensor:
        ent = self._entities(rel_type)
        h, phase = ent[head_index], self.phase(rel_type)
        h_re, h_im, c, s = h[:, :self.dim], h[:, self.dim:], torch.cos(phase), torch.sin(phase)
        return self._distance(h_re * c - h_im * s, h_re * s + h_im * c, ent)

    def score_heads(self, rel_type: Tensor, tail_index: Tensor) -> Tensor:
        # |h o r - t| = |h - t o conj(r)| because |r_k| = 1
        ent = self._entities(rel_type)
        t, phase = ent[tail_index], self.phase(rel_type)
        t_re, t_im, c, s = t[:, :self.dim], t[:, self.dim:], torch.cos(phase), torch.sin(phase)
        return self._distance(t_re * c + t_im * s, t_im * c - t_re * s, ent)


class RandomDot(RandomRotatE):
    """Same tables, bilinear scores by one matrix product: so cheap that the
    timing shows the evaluator's own cost (grouping, filtering, ranking)."""
    def score_tails(self, head_index: Tensor, rel_type: Tensor) -> Tensor:
        ent = self._entities(rel_type)
        return ent[head_index] @ ent.t()

    def score_heads(self, rel_type: Tensor, tail_index: Tensor) -> Tensor:
        ent = self._entities(rel_type)
        return ent[tail_index] @ ent.t()


class Timed:
    """Wraps a model and adds up the time spent in its scoring calls."""
    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.model, self.device, self.seconds = model, device, 0.0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def _timed(self, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        return out

    def score_tails(self, head_index, rel_type):
        return self._timed(self.model.score_tails, head_index, rel_type)

    def score_heads(self, rel_type, tail_index):
        return self._timed(self.model.score_heads, rel_type, tail_index)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--num-entities', type=int, default=15000)
    p.add_argument('--num-relations', type=int, default=28)
    p.add_argument('--dim', type=int, default=250, help='complex dimension')
    p.add_argument('--num-test', type=int, default=2663)
    p.add_argument('--num-known', type=int, default=26638)
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--ties', default='realistic')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--scorer', choices=('rotate', 'dot'), default='rotate',
                   help="'dot' isolates the evaluator's own cost")
    p.add_argument('--threads', type=int, default=None,
                   help='CPU threads (1 avoids oversubscription on a busy machine)')
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    n, r = args.num_entities, args.num_relations
    known = torch.stack([torch.randint(n, (args.num_known,)), torch.randint(r, (args.num_known,)),
                         torch.randint(n, (args.num_known,))], dim=1)
    test = known[-args.num_test:]  # test triples are among the known ones, as in the real splits
    model_cls = RandomRotatE if args.scorer == 'rotate' else RandomDot
    model = Timed(model_cls(n, r, args.dim).to(device), device)

    start = time.perf_counter()
    evaluator = LinkPredictionEvaluator(n, known, ties=args.ties, batch_size=args.batch_size)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    metrics = evaluator.evaluate(model, test)
    seconds = time.perf_counter() - start

    num_queries = 2 * test.size(0)
    print(json.dumps({
        'num_queries': num_queries,
        'seconds': round(seconds, 3),
        'queries_per_s': round(num_queries / seconds, 1),
        'score_seconds': round(model.seconds, 3),
        'overhead_seconds': round(seconds - model.seconds, 3),
        'setup_seconds': round(setup, 3),
        'scorer': args.scorer,
        'device': str(device),
        'threads': torch.get_num_threads(),
        'batch_size': args.batch_size,
        'num_entities': n,
        'dim': args.dim,
        'mrr': round(metrics['both']['mrr'], 5),
    }))


if __name__ == '__main__':
    main()
