r"""The sampled-candidates protocol, as OGB's wikikg2
(:class:`SampledLinkPredictionEvaluator`): each query ranks its target among
``K`` seeded filtered candidates, for graphs where full ranking is too slow."""
from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from native_pyg.evaluation.base import RankingEvaluator
from native_pyg.evaluation.ranks import filtered_and_raw_ranks

__all__ = ['SampledLinkPredictionEvaluator']


_M32 = 0xFFFFFFFF
_ROUNDS = 4


def _mix32(x: Tensor) -> Tensor:
    """A 32-bit integer hash (xor-shift-multiply) of ``int64`` values into a
    new tensor, in place after the copy; products stay below ``2**63``."""
    x = x & _M32
    y = x >> 16
    for _ in range(2):
        x.bitwise_xor_(y).mul_(0x45D9F3B).bitwise_and_(_M32)
        torch.bitwise_right_shift(x, 16, out=y)
    return x.bitwise_xor_(y)


def _query_keys(seed: int, tails: bool, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
    """``[rounds, Q]`` Feistel round keys per query, hashes of the seed, the
    direction and the triple: a query's candidates depend on nothing else."""
    key = _mix32(torch.full_like(head, int(seed) & _M32) ^ (0x5BD1E995 if tails else 0x1B873593))
    for i, value in enumerate((head, rel, tail)):
        key = _mix32(key ^ _mix32(value + 0x9E3779B9 * (i + 1)))
    return torch.stack([_mix32(key + (i + 1) * 0x27D4EB2F) for i in range(_ROUNDS)])


def _feistel(x: Tensor, keys: Tensor, half: Tensor) -> Tensor:
    """A keyed permutation of ``[0, 4**half)`` per element of ``x`` (a
    balanced Feistel network on ``2 * half`` bits); ``keys`` (``[rounds,
    ...]``) and ``half`` broadcast to ``x``."""
    mask = (torch.ones_like(half) << half) - 1
    left, right = x >> half, x & mask
    for key in keys:
        f = _mix32(right ^ key).bitwise_and_(mask)
        left, right = right, f.bitwise_xor_(left)
    return left.bitwise_left_shift_(half).bitwise_or_(right)


def _draw_positions(keys: Tensor, count: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """``[Q, K']`` distinct positions in ``[0, count_q)`` per query (the first
    ``min(k, count_q)`` outputs of the query's keyed pseudo-random
    permutation, by cycle walking) and their validity;
    ``K' = min(k, max count)``."""
    q = count.numel()
    width = int(min(k, int(count.max()) if q else 0))
    if width == 0:
        empty = count.new_zeros(q, 0)
        return empty, empty.bool()
    pos = torch.arange(width, device=count.device).expand(q, width)
    valid = pos < count.view(-1, 1)
    # half the bits of count, rounded up (log2 of a power of 2 is exact in float64)
    half = (torch.log2(count.clamp(min=2).double()).ceil().long() + 1) // 2
    y = _feistel(torch.where(valid, pos, torch.zeros_like(pos)), keys.unsqueeze(-1),
                 half.view(-1, 1))
    # cycle walking, on the outputs still out of range: a permutation of [0, count)
    row, col = (valid & (y >= count.view(-1, 1))).nonzero().unbind(1)
    while row.numel():
        walked = _feistel(y[row, col], keys[:, row], half[row])
        y[row, col] = walked
        out = walked >= count[row]
        row, col = row[out], col[out]
    return y.masked_fill_(~valid, 0), valid


class SampledLinkPredictionEvaluator(RankingEvaluator):
    r"""The sampled-candidates protocol (as OGB's ``ogbl-wikikg2``): each
    query ranks its target among ``num_candidates`` (:math:`K`) negative
    candidates drawn uniformly without replacement from its filtered
    candidates (all entities but its known answers and target); ranks lie
    in :math:`[1, K + 1]`. Time :math:`O(\text{queries} \times K)`, memory
    :math:`O(\text{batch\_size} \times K)`.

    A query's candidates are a function of ``seed``, its direction and its
    triple alone (a hash-keyed pseudo-random permutation of its filtered
    candidates): not of batches, order, device, the other triples or the
    global RNG. A query with at most :math:`K` filtered candidates gets all
    of them, so its rank is the full filtered rank. The target and its
    candidates are scored in one ``scorer.score_corrupted`` call. The
    metrics have the shape of
    :meth:`~native_pyg.evaluation.base.RankingEvaluator.evaluate`'s plus
    ``'protocol': 'sampled'``, ``'num_candidates'`` and ``'candidate_seed'``;
    ``'raw'`` repeats the sampled ranks (there is no unfiltered variant).

    Args:
        num_entities (int): Number of entities :math:`N`.
        known_triples (torch.Tensor): ``[E, 3]`` known true triples.
        num_candidates (int): :math:`K`. (default: :obj:`1000`)
        seed (int): Seed of the candidates. (default: :obj:`0`)
        batch_size (int): Queries per model call. (default: :obj:`64`)
        **kwargs: The other :class:`~native_pyg.evaluation.base.RankingEvaluator`
            arguments.
    """
    protocol = 'sampled'
    model_api = ('embed_entities', 'fuse_rows', 'relation_embedding', 'scorer')
    _repr_keys = ('num_entities', 'num_known', 'ties', 'num_candidates', 'seed', 'batch_size')

    def __init__(self, num_entities: int, known_triples: Tensor, num_candidates: int = 1000,
                 seed: int = 0, batch_size: int = 64, **kwargs):
        super().__init__(num_entities, known_triples, batch_size=batch_size, **kwargs)
        if num_candidates <= 0:
            raise ValueError(f"num_candidates must be positive, got {num_candidates}")
        self.num_candidates = int(num_candidates)
        self.seed = int(seed)

    def candidates(self, triples: Tensor, tails: bool) -> Tuple[Tensor, Tensor]:
        """``(candidates [E, K'], valid [E, K'])``: the negative candidates of
        the tail (``tails``) or head queries of ``triples`` (``K' <= K``;
        ``valid`` is ``False`` on padding, where a query has fewer than ``K``
        filtered candidates)."""
        triples = self._check_triples(triples)
        head, rel, tail = triples.unbind(1)
        query, target = (head, tail) if tails else (tail, head)
        row, col = (self.filter.tail_pairs(query, rel) if tails
                    else self.filter.head_pairs(rel, query))
        q, n = triples.size(0), self.num_entities
        # excluded entities per query: known answers and the target, sorted and unique
        arange = torch.arange(q, device=triples.device)
        key = torch.unique(torch.cat([row * n + col, arange * n + target]))
        row, col = key // n, key % n
        excluded = torch.bincount(row, minlength=q)
        start = excluded.cumsum(0) - excluded
        # the j-th filtered entity is j + #{excluded e_i : e_i - i <= j}
        adjusted = col - (torch.arange(row.numel(), device=row.device) - start[row])
        sorted_key = row * (n + 1) + adjusted
        positions, valid = _draw_positions(_query_keys(self.seed, tails, head, rel, tail),
                                           n - excluded, self.num_candidates)
        lookup = arange.view(-1, 1) * (n + 1) + positions
        cand = positions - start.view(-1, 1) + torch.searchsorted(sorted_key, lookup, right=True)
        return cand.masked_fill_(~valid, 0), valid

    def _rank_triples(self, model: Any, triples: Tensor) -> Tensor:
        head, rel, tail = triples.unbind(1)
        out = torch.empty(2, triples.size(0), dtype=torch.float, device=triples.device)
        for tails in (False, True):
            query, target = (head, tail) if tails else (tail, head)
            for idx in tqdm(self._chunks(rel), desc='sampled ranking', unit='batch',
                            disable=None if self.progress else True):  # tty only
                # per batch (a query's candidates do not depend on its batch)
                cand, valid = self.candidates(triples[idx], tails)
                out[int(tails), idx] = self._rank(model, query[idx], rel[idx], target[idx],
                                                  cand, valid, tails)
        return torch.cat([out, out])  # the protocol has no raw variant: the sampled ranks again

    def _rank(self, model: Any, query: Tensor, rel: Tensor, target: Tensor, cand: Tensor,
              valid: Tensor, tails: bool) -> Tensor:
        b = query.numel()
        # the target in column 0, scored in the same call as its candidates
        cand = torch.cat([target.view(-1, 1), cand], dim=1)
        valid = torch.cat([valid.new_ones(b, 1), valid], dim=1)
        emb, mask, (iq, ic) = model.embed_entities(query, cand)
        q, c = model.fuse_rows(emb, mask, [(iq, rel), (ic, rel.view(-1, 1).expand_as(ic))])
        flip = torch.full((b,), not tails, dtype=torch.bool, device=query.device)
        scores = model.scorer.score_corrupted(q, model.relation_embedding(rel), q, c, flip)
        removed = (~valid).nonzero().unbind(1)
        return filtered_and_raw_ranks(scores, torch.zeros_like(target), removed, self.ties)[0]

    def protocol_fields(self) -> Dict[str, Any]:
        return {**super().protocol_fields(), 'num_candidates': self.num_candidates}

    def _result_fields(self) -> Dict[str, Any]:
        return {**self.protocol_fields(), 'candidate_seed': self.seed}

    def describe(self) -> str:
        return f'{super().describe()}, {self.num_candidates} candidates per query'
