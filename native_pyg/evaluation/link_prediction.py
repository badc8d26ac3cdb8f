"""Filtered 1-vs-all link-prediction evaluation (head and tail queries)."""
from __future__ import annotations

import contextlib
import itertools
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..kernels.distance_kernels import compiled_distances
from ..nn.modes import evaluating
from ..data.relations import CATEGORIES
from .ranks import (KnownTripleFilter, check_ties, filtered_and_raw_ranks,
                    ranking_metrics)

DIRECTIONS = ('head', 'tail', 'both')


def model_device(model: Any) -> torch.device:
    """The device of the model's first parameter or buffer, else CPU."""
    tensors = itertools.chain(
        model.parameters() if hasattr(model, 'parameters') else (),
        model.buffers() if hasattr(model, 'buffers') else ())
    first = next(tensors, None)
    return first.device if first is not None else torch.device('cpu')


@contextlib.contextmanager
def eval_mode(model: Any, compile: bool) -> Iterator[None]:
    """Eval mode and no gradient for the duration; training mode restored."""
    with evaluating(model), torch.no_grad(), compiled_distances(compile):
        yield


def _direction_metrics(head: Tensor, tail: Tensor,
                       hits: Sequence[int]) -> Dict[str, Dict[str, float]]:
    return {'head': ranking_metrics(head, hits), 'tail': ranking_metrics(tail, hits),
            'both': ranking_metrics(torch.cat([head, tail]), hits)}


class LinkPredictionEvaluator:
    r"""Filtered rank-based link prediction: every test triple :math:`(h, r, t)`
    asks a tail query :math:`(h, r, ?)` and a head query :math:`(?, r, t)`,
    each ranked against all :math:`N` entities (1-vs-all).

    Filtered ranks remove every other known true answer (all triples in
    ``known_triples``, normally the union of train, valid and test) from the
    candidates; the target itself is always ranked. Raw (unfiltered) ranks are
    reported next to them. Ties follow ``ties`` (see
    :func:`~native_pyg.evaluation.rank_from_scores`): the default
    ``'realistic'`` rank is the mean of the optimistic and pessimistic ranks;
    ``'optimistic'`` (only strictly better candidates count) matches the rule
    behind most published tables.

    Queries are grouped by relation and then split into chunks of at most
    ``batch_size`` queries, so every call to the model has a single relation
    (a model with relation-dependent entity embeddings computes them once per
    call) and memory is bounded by ``batch_size x N`` scores. Duplicate
    evaluated triples each count.

    The model is duck-typed: it needs

    * ``score_tails(head_index [B], rel_type [B]) -> [B, N]`` and
    * ``score_heads(rel_type [B], tail_index [B]) -> [B, N]``,

    higher = more plausible. It runs under :func:`torch.no_grad` in eval mode
    (its training mode is restored afterwards) on the device of its first
    parameter or buffer.

    Args:
        num_entities (int): Number of entities :math:`N`.
        known_triples (torch.Tensor): ``[E, 3]`` ``(head, relation, tail)``
            rows of every known true triple (for filtering).
        relation_category (Sequence[str], optional): The category of each
            relation id, one of ``'1-1'``, ``'1-N'``, ``'N-1'``, ``'N-N'``, for
            per-category metrics. (default: :obj:`None`)
        ties (str): Tie rule: ``'realistic'``, ``'optimistic'`` or
            ``'pessimistic'``. (default: :obj:`'realistic'`)
        batch_size (int): Queries per model call. (default: :obj:`256`)
        hits (Sequence[int]): Hits@k cut-offs. (default: ``(1, 3, 10)``)
        progress (bool): Show a progress bar. (default: :obj:`False`)
        compile (bool): On a CPU, compute RotatE's 1-vs-all distances with a
            :func:`torch.compile`-generated kernel (see
            :func:`~native_pyg.kernels.distance_kernels.compiled_distances`).
            (default: :obj:`False`)
        seen_entities (torch.Tensor, optional): ``[N]`` bool, the entities
            that occur in a training triple; metrics are then also reported
            per entity group: ``'seen'`` (head and tail seen) and
            ``'unseen'`` (the triple touches an unseen entity).
            (default: :obj:`None`)

    A model with more than :math:`N` entities (some added after training,
    :meth:`NativE.add_entities <native_pyg.nn.NativE.add_entities>`) is
    ranked against the first :math:`N` only.
    """
    def __init__(
        self,
        num_entities: int,
        known_triples: Tensor,
        relation_category: Optional[Sequence[str]] = None,
        ties: str = 'realistic',
        batch_size: int = 256,
        hits: Sequence[int] = (1, 3, 10),
        progress: bool = False,
        compile: bool = False,
        seen_entities: Optional[Tensor] = None,
    ):
        if num_entities <= 0:
            raise ValueError(f"num_entities must be positive, got {num_entities}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.num_entities = int(num_entities)
        self.filter = KnownTripleFilter(known_triples, self.num_entities)
        self.ties = check_ties(ties)
        self.batch_size = int(batch_size)
        self.hits = tuple(int(k) for k in hits)
        self.progress = progress
        self.compile = bool(compile)
        self.seen_entities = None
        if seen_entities is not None:
            seen = torch.as_tensor(seen_entities).bool().cpu()
            if seen.shape != (self.num_entities,):
                raise ValueError(f"seen_entities must have shape [{self.num_entities}], "
                                 f"got {tuple(seen.shape)}")
            self.seen_entities = seen
        self.relation_category = None
        if relation_category is not None:
            bad = sorted({c for c in relation_category if c not in CATEGORIES})
            if bad:
                raise ValueError(f"unknown relation categories {bad}; expected {CATEGORIES}")
            self.relation_category = list(relation_category)

    @classmethod
    def from_data(cls, data, split_known: Sequence[str] = ('train', 'valid', 'test'),
                  **kwargs) -> 'LinkPredictionEvaluator':
        """An evaluator for an MMKG :class:`~torch_geometric.data.HeteroData`:
        known triples from the ``split_known`` splits, relation categories
        (unless given in ``kwargs``) from all of its triples, seen entities
        from its training triples."""
        from ..data.relations import relation_categories
        from ..data.schema import ENTITY, SPLITS, seen_entities, split_triples

        known = torch.cat([split_triples(data, s) for s in split_known], dim=0)
        kwargs.setdefault('seen_entities', seen_entities(data))
        if 'relation_category' not in kwargs:
            every = torch.cat([split_triples(data, s) for s in SPLITS], dim=0)
            kwargs['relation_category'] = relation_categories(every, data.num_relations)
        return cls(data[ENTITY].num_nodes, known, **kwargs)

    def _check_triples(self, triples: Tensor) -> Tensor:
        triples = torch.as_tensor(triples)
        if triples.dim() != 2 or triples.size(1) != 3:
            raise ValueError(f"triples must have shape [E, 3] (head, relation, tail), "
                             f"got {tuple(triples.shape)}")
        if triples.size(0) == 0:
            raise ValueError("no triples to evaluate")
        triples = triples.long()
        ent = triples[:, [0, 2]]
        if int(ent.min()) < 0 or int(ent.max()) >= self.num_entities:
            raise ValueError(f"triples hold entity ids outside [0, {self.num_entities})")
        if int(triples[:, 1].min()) < 0:
            raise ValueError("triples hold negative relation ids")
        return triples

    def _chunks(self, rel_type: Tensor) -> List[Tensor]:
        """Index chunks of at most ``batch_size`` queries, one relation each."""
        order = torch.argsort(rel_type, stable=True)
        _, counts = torch.unique_consecutive(rel_type[order], return_counts=True)
        chunks = []
        for group in order.split(counts.tolist()):
            chunks.extend(group.split(self.batch_size))
        return chunks

    def _check_scores(self, scores: Tensor, num_queries: int, which: str) -> Tensor:
        if scores.dim() == 2 and scores.size(1) > self.num_entities:
            scores = scores[:, :self.num_entities]  # entities added after training
        if scores.shape != (num_queries, self.num_entities):
            raise ValueError(f"model.{which} returned shape {tuple(scores.shape)}, expected "
                             f"[{num_queries}, {self.num_entities}]")
        return scores

    def _rank(self, scores: Tensor, pairs_fn, query: Tuple[Tensor, Tensor],
              target: Tensor) -> Tuple[Tensor, Tensor]:
        """Filtered and raw ranks of one chunk, on the device of ``target``."""
        here = scores.device
        removed = pairs_fn(*(q.to(here) for q in query))  # includes the target: ignored
        filtered, raw = filtered_and_raw_ranks(scores, target.to(here), removed, self.ties)
        return filtered.to(target.device), raw.to(target.device)

    def _unique_scores(self, score_fn, a: Tensor, b: Tensor, name: str,
                       entity_second: bool = False) -> Tensor:
        """``score_fn(a, b)`` rows of every query, each distinct query
        (entity, relation) scored once (test splits repeat about 1 in 8)."""
        ent, rel = (b, a) if entity_second else (a, b)
        uniq, first, inverse = distinct_queries(ent, rel)
        if uniq == ent.numel():
            return self._check_scores(score_fn(a, b), ent.numel(), name)
        scores = self._check_scores(score_fn(a[first], b[first]), uniq, name)
        return scores[inverse]

    def ranks(self, model: Any, triples: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(head_ranks, tail_ranks, raw_head_ranks, raw_tail_ranks)``, each a
        ``[E]`` float CPU tensor aligned with the rows of ``triples``."""
        triples = self._check_triples(triples)
        device = model_device(model)
        head, rel, tail = triples.to(device).unbind(1)
        out = torch.empty(4, triples.size(0), dtype=torch.float, device=device)
        chunks = self._chunks(rel)
        # Models that can (NativE) embed all entities once for the whole run
        # and keep the last relation's fused candidates for the head queries.
        cache = getattr(model, 'cached_entities', None)
        with eval_mode(model, self.compile), \
                (cache() if cache is not None else contextlib.nullcontext()):
            for idx in tqdm(chunks, desc='link prediction', unit='batch',
                            disable=None if self.progress else True):  # tty only
                h, r, t = head[idx], rel[idx], tail[idx]
                scores = self._unique_scores(model.score_tails, h, r, 'score_tails')
                out[1, idx], out[3, idx] = self._rank(scores, self.filter.tail_pairs, (h, r), t)
                scores = self._unique_scores(model.score_heads, r, t, 'score_heads', True)
                out[0, idx], out[2, idx] = self._rank(scores, self.filter.head_pairs, (r, t), h)
        head_ranks, tail_ranks, raw_head, raw_tail = out.cpu().unbind(0)
        return head_ranks, tail_ranks, raw_head, raw_tail

    def metrics_from_ranks(self, triples: Tensor, head_ranks: Tensor, tail_ranks: Tensor,
                           raw_head: Tensor, raw_tail: Tensor) -> Dict[str, Any]:
        """The metric dictionary of :meth:`evaluate` from precomputed ranks."""
        triples = self._check_triples(triples)
        out: Dict[str, Any] = _direction_metrics(head_ranks, tail_ranks, self.hits)
        out['raw'] = _direction_metrics(raw_head, raw_tail, self.hits)
        out['per_category'] = {}
        if self.relation_category is not None:
            rel = triples[:, 1]
            if int(rel.max()) >= len(self.relation_category):
                raise ValueError(f"relation id {int(rel.max())} has no category "
                                 f"({len(self.relation_category)} given)")
            cat_id = torch.tensor([CATEGORIES.index(c) for c in self.relation_category])[rel]
            for i, name in enumerate(CATEGORIES):
                sel = cat_id == i
                if bool(sel.any()):
                    group = _direction_metrics(head_ranks[sel], tail_ranks[sel], self.hits)
                    group['count'] = int(sel.sum())
                    out['per_category'][name] = group
        out['per_group'] = {}
        if self.seen_entities is not None:
            both_seen = self.seen_entities[triples[:, 0]] & self.seen_entities[triples[:, 2]]
            for name, sel in (('seen', both_seen), ('unseen', ~both_seen)):
                if bool(sel.any()):
                    group = _direction_metrics(head_ranks[sel], tail_ranks[sel], self.hits)
                    group['count'] = int(sel.sum())
                    out['per_group'][name] = group
        out['num_triples'] = int(triples.size(0))
        out['ties'] = self.ties
        return out

    def evaluate(self, model: Any, triples: Tensor) -> Dict[str, Any]:
        """Evaluates ``model`` on ``triples`` (``[E, 3]``, ``(h, r, t)``).

        Returns:
            dict: ``{'head', 'tail', 'both'}`` filtered metrics (``mrr``,
            ``mr``, ``hits@k``), ``'raw'`` with the same three unfiltered,
            ``'per_category'`` (``{category: {'head', 'tail', 'both',
            'count'}}``, empty without categories), ``'per_group'`` (the
            same for ``'seen'`` / ``'unseen'`` triples, empty without
            ``seen_entities``), ``'num_triples'`` and ``'ties'``. All values are JSON-serialisable Python scalars.
        """
        ranks = self.ranks(model, triples)
        return self.metrics_from_ranks(triples, *ranks)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_entities={self.num_entities}, '
                f'num_known={self.filter.num_known}, ties={self.ties!r}, '
                f'batch_size={self.batch_size})')


def _metric_rows(metrics: Mapping[str, Any]) -> List[Tuple[str, str, float]]:
    """``(label, key, scale)`` for MRR, MR and every Hits@k in ``metrics``."""
    keys = [k for k in metrics['both'] if k.startswith('hits@')]
    keys.sort(key=lambda k: int(k.split('@')[1]))
    return ([('MRR', 'mrr', 100.0), ('MR', 'mr', 1.0)]
            + [(f"H@{k.split('@')[1]}", k, 100.0) for k in keys])


def _cell(value: float, scale: float) -> str:
    return f'{value * scale:.2f}' if scale != 1.0 else f'{value:.1f}'


def format_metrics(metrics: Mapping[str, Any], per_category: bool = True) -> str:
    """A readable table of one :meth:`LinkPredictionEvaluator.evaluate` result:
    rows MRR, MR, Hits@k (MRR and Hits in %); columns filtered head, tail,
    both and raw both; then, if present, filtered MRR and the largest Hits@k
    per relation category."""
    rows = _metric_rows(metrics)
    lines = [f"link prediction: {metrics.get('num_triples', '?')} triples, filtered ranks "
             f"(raw both: unfiltered), ties={metrics.get('ties', '?')}, MRR and Hits in %",
             f"{'metric':<8}{'head':>10}{'tail':>10}{'both':>10}{'raw both':>10}"]
    for label, key, scale in rows:
        cells = [metrics[d][key] for d in DIRECTIONS] + [metrics['raw']['both'][key]]
        lines.append(f'{label:<8}' + ''.join(f'{_cell(v, scale):>10}' for v in cells))
    # MRR and the largest Hits@k per relation category and per entity group
    shown = [(label, key) for label, key, _ in rows if key != 'mr']
    shown = shown[:1] + shown[-1:] if len(shown) > 1 else shown
    for title, groups in (('category', metrics.get('per_category') if per_category else None),
                          ('entities', metrics.get('per_group'))):
        if not groups:
            continue
        lines.append('')
        lines.append(f"{title:<9}{'count':>7}" + ''.join(
            f'{d + " " + label:>12}' for label, _ in shown for d in DIRECTIONS))
        for name, g in groups.items():
            cells = [g[d][key] * 100.0 for _, key in shown for d in DIRECTIONS]
            lines.append(f"{name:<9}{g['count']:>7}" + ''.join(f'{v:>12.2f}' for v in cells))
    return '\n'.join(lines)


def compare_metrics(named: Mapping[str, Mapping[str, Any]]) -> str:
    """Several models side by side: one column per model, rows MRR, MR and
    Hits@k (filtered, averaged over head and tail; MRR and Hits in %) and raw
    MRR. The header states the tie rule, and flags mixed rules."""
    if not named:
        return '(no results)'
    names = list(named)
    first = named[names[0]]
    rows = _metric_rows(first)
    width = max(10, *(len(n) + 2 for n in names))
    ties = sorted({str(m.get('ties', '?')) for m in named.values()})
    note = f'ties={ties[0]}' if len(ties) == 1 else f"MIXED tie rules {ties}: not comparable"
    lines = [f'filtered link prediction, both directions, {note} (MRR and Hits in %)',
             f"{'metric':<9}" + ''.join(f'{n:>{width}}' for n in names)]
    for label, key, scale in rows:
        lines.append(f'{label:<9}' + ''.join(
            f'{_cell(named[n]["both"][key], scale):>{width}}' for n in names))
    lines.append(f"{'raw MRR':<9}" + ''.join(
        f'{_cell(named[n]["raw"]["both"]["mrr"], 100.0):>{width}}' for n in names))
    return '\n'.join(lines)


def distinct_queries(entity: Tensor, relation: Tensor) -> Tuple[int, Tensor, Tensor]:
    """``(count, first, inverse)`` of the queries ``(entity[i], relation[i])``:
    the number of distinct pairs, the position of one occurrence of each, and
    each query's distinct id (keys multiply by the relation range, so pairs
    stay distinct in any chunk)."""
    key = entity * (int(relation.max()) + 1 if relation.numel() else 1) + relation
    values, inverse = torch.unique(key, return_inverse=True)
    first = torch.empty(values.numel(), dtype=torch.long, device=key.device)
    first.scatter_(0, inverse, torch.arange(key.numel(), device=key.device))
    return values.numel(), first, inverse
