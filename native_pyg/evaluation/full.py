"""The full protocol (:class:`LinkPredictionEvaluator`): filtered 1-vs-all
ranking, every query against all entities, each chunk's scores in memory."""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from native_pyg.evaluation.base import RankingEvaluator
from native_pyg.evaluation.ranks import filtered_and_raw_ranks

__all__ = ['LinkPredictionEvaluator', 'distinct_queries']


class LinkPredictionEvaluator(RankingEvaluator):
    r"""Filtered rank-based link prediction, 1-vs-all: each head and tail
    query ranks its target against all :math:`N` entities (see
    :class:`~native_pyg.evaluation.base.RankingEvaluator` for the filter,
    the tie rules and the arguments). Memory is bounded by ``batch_size x
    N`` scores; each distinct query of a chunk is scored once.

    The model is duck-typed: it needs

    * ``score_tails(head_index [B], rel_type [B]) -> [B, N]`` and
    * ``score_heads(rel_type [B], tail_index [B]) -> [B, N]``,

    higher = more plausible. A model that has ``cached_entities()`` (e.g.
    :class:`~native_pyg.nn.NativE`) runs inside it, embedding all entities
    once per evaluation.

    A model with more than :math:`N` entities (some added after training,
    :meth:`NativE.add_entities <native_pyg.nn.NativE.add_entities>`) is
    ranked against the first :math:`N` only.
    """
    protocol = 'full'

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

    def _rank_triples(self, model: Any, triples: Tensor) -> Tensor:
        head, rel, tail = triples.unbind(1)
        out = torch.empty(4, triples.size(0), dtype=torch.float, device=triples.device)
        chunks = self._chunks(rel)
        # Models that can (NativE) embed all entities once for the whole run
        # and keep the last relation's fused candidates for the head queries.
        cache = getattr(model, 'cached_entities', None)
        with cache() if cache is not None else contextlib.nullcontext():
            for idx in tqdm(chunks, desc='link prediction', unit='batch',
                            disable=None if self.progress else True):  # tty only
                h, r, t = head[idx], rel[idx], tail[idx]
                scores = self._unique_scores(model.score_tails, h, r, 'score_tails')
                out[1, idx], out[3, idx] = self._rank(scores, self.filter.tail_pairs, (h, r), t)
                scores = self._unique_scores(model.score_heads, r, t, 'score_heads', True)
                out[0, idx], out[2, idx] = self._rank(scores, self.filter.head_pairs, (r, t), h)
        return out

    def _result_fields(self) -> Dict[str, Any]:
        # a 1-vs-all result has always been the bare metrics: callers that mix
        # protocols (training, the command line) name it themselves
        return {}


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
