r"""Link-prediction evaluation at scale: streamed filtered 1-vs-all ranking
with bounded memory (:class:`StreamingLinkPredictionEvaluator`), the
sampled-candidates protocol as OGB's wikikg2
(:class:`SampledLinkPredictionEvaluator`), and evaluation of a seeded
subset of the queries with confidence intervals (:func:`sample_queries`,
:func:`confidence_interval`, :func:`evaluate_sample`, or
``evaluate(model, triples, sample=n, seed=0)`` of both evaluators).

Models are duck-typed on the API of :class:`~native_pyg.nn.NativE`:
``embed_entities``, ``fuse``, ``fuse_rows``, ``relation_embedding``,
``scorer`` (``score_tails``, ``score_heads``, ``score_corrupted``) and
optionally ``fusion`` (ReDAF, whose attention logits are computed once per
embedded batch, as on the in-memory path).
"""
from __future__ import annotations

import contextlib
import math
import warnings
from statistics import NormalDist
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..nn.scorers import compiled_distances
from .link_prediction import LinkPredictionEvaluator, _model_device
from .ranks import _combine, filtered_and_raw_ranks

__all__ = ['StreamingLinkPredictionEvaluator', 'SampledLinkPredictionEvaluator',
           'sample_queries', 'confidence_interval', 'evaluate_sample']


# ----------------------------------------------------------------- helpers
def _check_model_api(model: Any, names: Sequence[str]) -> None:
    if [n for n in names if not hasattr(model, n)]:
        raise TypeError(f"{type(model).__name__} lacks the NativE API {list(names)} the "
                        f"streamed and sampled evaluators need (LinkPredictionEvaluator "
                        f"only needs score_tails and score_heads)")


def _logits(model: Any, emb: Tensor) -> Optional[Tensor]:
    """ReDAF's attention logits of ``emb`` (``None`` without), once per
    embedded batch as on the in-memory path (the same float path)."""
    fusion = getattr(model, 'fusion', None)
    if fusion is None or getattr(fusion, 'u', None) is None:
        return None
    return fusion.logits(emb)


def _effective(score: Tensor) -> Tensor:
    r"""Scores as ranking reads them: NaN is :math:`-\infty`."""
    return torch.where(torch.isnan(score), torch.full_like(score, float('-inf')), score)


@contextlib.contextmanager
def _eval_mode(model: Any, compile: bool) -> Iterator[None]:
    """Eval mode and no gradient for the duration; training mode restored."""
    was_training = getattr(model, 'training', None)
    if hasattr(model, 'eval'):
        model.eval()
    try:
        with torch.no_grad(), compiled_distances(compile):
            yield
    finally:
        if was_training is not None and hasattr(model, 'train'):
            model.train(was_training)


# ------------------------------------------------------ query subsampling
def sample_queries(triples: Tensor, n: int, seed: int = 0,
                   return_index: bool = False):
    """A seeded subset of ``n`` rows of ``triples`` (``[E, ...]``), drawn
    uniformly without replacement and kept in their original order (all rows,
    copied, when ``n >= E``); with ``return_index`` also their ``[n]``
    positions. The same ``(E, n, seed)`` always picks the same rows (a CPU
    :class:`torch.Generator`, independent of the global RNG)."""
    triples = torch.as_tensor(triples)
    n, total = int(n), triples.size(0)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    gen = torch.Generator().manual_seed(int(seed))
    index = torch.randperm(total, generator=gen)[:n].sort().values
    subset = triples[index.to(triples.device)].clone()
    return (subset, index) if return_index else subset


def confidence_interval(values: Tensor, level: float = 0.95, hits: Sequence[int] = (1, 3, 10),
                        population: Optional[int] = None,
                        reciprocal: bool = False) -> Dict[str, float]:
    r"""``{'mrr', 'mr', 'hits@k'...}``: half-widths of the ``level``
    confidence intervals of the metrics estimated from ``values``, the
    ``[n]`` or ``[n, k]`` ranks (or with ``reciprocal`` their reciprocals)
    of a uniform sample of ``n`` units drawn without replacement from
    ``population`` units (``None``: infinitely many).

    Normal approximation (no bootstrap): a unit (row) contributes its mean
    reciprocal rank, rank and hit indicator over its columns (e.g. the head
    and tail rank of one triple, which are not independent), and the
    half-width of metric :math:`m` is :math:`z_{(1+\text{level})/2}
    \sqrt{s_m^2 / n \cdot (P - n) / (P - 1)}` with :math:`s_m^2` the units'
    sample variance (finite-population corrected: 0 when the sample is the
    population; infinite for one unit of a larger one).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    values = torch.as_tensor(values).detach().to('cpu', torch.float64)
    values = values.unsqueeze(1) if values.dim() == 1 else values
    if values.dim() != 2 or values.numel() == 0:
        raise ValueError(f"values must be a non-empty [n] or [n, k] tensor, "
                         f"got shape {tuple(values.shape)}")
    ranks, n = (1.0 / values if reciprocal else values), values.size(0)
    size = n if population is None else int(population)
    if size < n:
        raise ValueError(f"population ({population}) is smaller than the sample ({n})")
    per_unit = {'mrr': (1.0 / ranks).mean(1), 'mr': ranks.mean(1)}
    for k in hits:
        per_unit[f'hits@{int(k)}'] = (ranks <= k).to(torch.float64).mean(1)
    if population is not None and size == n:
        return {key: 0.0 for key in per_unit}
    if n < 2:
        return {key: math.inf for key in per_unit}
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    fpc = 1.0 if population is None else (size - n) / (size - 1)
    return {key: float(z * math.sqrt(float(v.var(unbiased=True)) / n * fpc))
            for key, v in per_unit.items()}


def evaluate_sample(evaluator: LinkPredictionEvaluator, model: Any, triples: Tensor,
                    sample: Optional[int] = None, seed: int = 0,
                    level: float = 0.95) -> Dict[str, Any]:
    r"""The metrics of ``evaluator`` (its ``ranks`` and
    ``metrics_from_ranks``) for ``model`` on ``triples``, on a seeded subset of
    ``sample`` triples (:func:`sample_queries`) when ``sample`` is given and
    smaller than the number of triples :math:`E`. The result then also
    holds ``'sampled_queries'`` (:math:`n`), ``'total_queries'``
    (:math:`E`) and ``'ci95'`` (for ``level=0.95``): the half-widths of the
    filtered MRR, MR and Hits@k over both directions
    (:func:`confidence_interval` with the triple as sampling unit, its head
    and tail rank averaged, finite-population corrected). Works with any
    evaluator that has ``ranks`` and ``metrics_from_ranks``, e.g.
    :class:`~native_pyg.evaluation.LinkPredictionEvaluator`."""
    triples = torch.as_tensor(triples)
    total = triples.size(0)
    if sample is None or int(sample) >= total:
        return evaluator.metrics_from_ranks(triples, *evaluator.ranks(model, triples))
    subset = sample_queries(triples, int(sample), seed)
    ranks = evaluator.ranks(model, subset)
    out = evaluator.metrics_from_ranks(subset, *ranks)
    out[f'ci{level * 100:g}'] = confidence_interval(torch.stack(ranks[:2], 1), level,
                                                    evaluator.hits, population=total)
    out.update(sampled_queries=int(subset.size(0)), total_queries=int(total),
               sample_seed=int(seed))
    return out


# ----------------------------------------------------- streamed 1-vs-all
class _Block:
    """The queries of one relation and direction, at most ``batch_size``,
    with what streaming keeps for them across candidate chunks."""

    def __init__(self, index: Tensor, tails: bool, rel: int, query_entity: Tensor,
                 target: Tensor):
        self.index, self.tails, self.rel = index, tails, rel
        self.query_entity, self.target = query_entity[index], target[index]
        self.unique, self.inverse = torch.unique(self.query_entity, return_inverse=True)
        # fused unique queries [u, De], their relation [u, Dr], the provisional
        # target scores [b] and the known answers (row, col) sorted by col
        self.query = self.rel_emb = self.score = self.removed = None

    def reset(self, tolerance: float, window_limit: int) -> None:
        """Fresh counts for a stream of all chunks, against ``score``."""
        b, device = self.target.numel(), self.target.device
        self.counts = torch.zeros(4, b, dtype=torch.long, device=device)
        self.exact = torch.full((b,), float('nan'), device=device, dtype=self.score.dtype)
        self.seen = torch.zeros(b, dtype=torch.bool, device=device)
        # what the counts compare with: the provisional score, then the chunk's own
        self.threshold = _effective(self.score)
        # relative to the score, and to the block's typical score (scores near 0)
        finite = torch.isfinite(self.threshold)
        size = self.threshold.abs().masked_fill(~finite, 0.0)
        typical = size.sum() / finite.sum().clamp(min=1)
        self.tolerance = torch.where(finite, tolerance * (size + typical), torch.zeros_like(size))
        self.window: List[Tuple[Tensor, Tensor, Tensor]] = []  # (row, value, removed)
        self.window_size, self.window_limit, self.overflow = 0, window_limit, False


class _ProtocolEvaluator(LinkPredictionEvaluator):
    """``evaluate`` with query subsampling, and the protocol in the result."""
    protocol = 'streamed'

    def evaluate(self, model: Any, triples: Tensor, sample: Optional[int] = None,
                 seed: int = 0, level: float = 0.95) -> Dict[str, Any]:
        """:meth:`LinkPredictionEvaluator.evaluate`'s metrics plus
        ``'protocol'``; with ``sample`` on a seeded subset of ``sample``
        triples, with confidence intervals (see :func:`evaluate_sample`)."""
        out = evaluate_sample(self, model, triples, sample, seed, level)
        out['protocol'] = self.protocol
        return out


class StreamingLinkPredictionEvaluator(_ProtocolEvaluator):
    r"""Filtered (and raw) 1-vs-all ranks, those of
    :class:`~native_pyg.evaluation.LinkPredictionEvaluator`, with memory
    bounded for millions of entities (e.g. features memory-mapped from disk).

    The outermost loop runs over chunks of ``candidate_chunk`` entities, so
    every entity's features are read and projected once per evaluation:
    per chunk, the modality embeddings are computed once
    (``model.embed_entities(chunk)``) and fused under each relation of the
    queries, and each query (in blocks of ``batch_size`` of one relation)
    counts the chunk's candidates scoring above and equal to its target,
    and those of them that are known answers (filtered out). Memory:
    ``batch_size x candidate_chunk`` scores and one chunk's embeddings.

    Exactness: a target is compared with the candidates at the score it gets
    *as a candidate in its own chunk* (as the in-memory evaluator reads it
    from its row of scores). Chunks streamed before the target's are counted
    against a provisional score (a first pass scores the targets as
    candidates with the same ``scorer.score_tails``/``score_heads``), keeping
    the candidates within ``tolerance`` of it, which correct the counts if
    the target's chunk scores it otherwise (in the last bits: a matrix
    kernel's result may depend on its number of rows). A larger move, or
    more than ``window_limit`` kept candidates, streams the affected blocks
    again (with a warning). Queries and candidates follow the in-memory
    path (ReDAF logits once per embedded batch, then gathered); only their
    batches differ (chunks instead of all entities), so the ranks are the
    in-memory ones unless a batch-dependent kernel reorders two scores
    within its rounding. Identical rows stay exact ties where the kernels
    treat them alike (structure rows; RotatE or TransE scores on a CPU).

    Entities beyond ``num_entities`` (added after training) are not
    candidates. A structural GNN encoder runs over the whole graph on every
    ``embed_entities`` call (once per chunk).

    Args:
        num_entities (int): Number of entities :math:`N` (candidates).
        known_triples (torch.Tensor): ``[E, 3]`` known true triples.
        candidate_chunk (int): Candidates per chunk. (default: :obj:`65536`)
        batch_size (int): Queries scored against a chunk at once.
            (default: :obj:`512`)
        tolerance (float): Kept scores around a provisional target score
            :math:`s`: within ``tolerance`` :math:`\cdot (|s| + \text{the
            block's mean } |s|)`. (default: :obj:`1e-4`)
        window_limit (int, optional): Most kept candidates per query block.
            (default: ``max(candidate_chunk, 65536)``)
        **kwargs: The other :class:`LinkPredictionEvaluator` arguments
            (``relation_category``, ``ties``, ``hits``, ``progress`` (a bar
            over chunks), ``compile``, ``seen_entities``).
    """
    def __init__(self, num_entities: int, known_triples: Tensor,
                 candidate_chunk: int = 65536, batch_size: int = 512,
                 tolerance: float = 1e-4, window_limit: Optional[int] = None, **kwargs):
        super().__init__(num_entities, known_triples, batch_size=batch_size, **kwargs)
        if candidate_chunk <= 0:
            raise ValueError(f"candidate_chunk must be positive, got {candidate_chunk}")
        if tolerance < 0:
            raise ValueError(f"tolerance must be non-negative, got {tolerance}")
        self.candidate_chunk = int(candidate_chunk)
        self.tolerance = float(tolerance)
        self.window_limit = (max(self.candidate_chunk, 2 ** 16) if window_limit is None
                             else int(window_limit))
        self.passes = 0  #: streams of the candidates in the last :meth:`ranks` (1, or 2)

    def _blocks(self, triples: Tensor) -> List[_Block]:
        head, rel, tail = triples.unbind(1)
        return [_Block(idx, tails, int(rel[idx[0]]), *((head, tail) if tails else (tail, head)))
                for tails in (False, True) for idx in self._chunks(rel)]

    def _score(self, model: Any, block: _Block, candidates: Tensor) -> Tensor:
        """``[u, C]`` scores of the block's unique queries against fused
        candidates: the one function used for targets and chunks alike."""
        if block.tails:
            return model.scorer.score_tails(block.query, block.rel_emb, candidates)
        return model.scorer.score_heads(block.rel_emb, block.query, candidates)

    def _prepare(self, model: Any, block: _Block) -> None:
        """The block's fused queries, relation embeddings, provisional target
        scores (each target scored as a candidate) and known answers."""
        device = block.target.device
        targets, target_inverse = torch.unique(block.target, return_inverse=True)
        emb, mask, (iq, it) = model.embed_entities(block.unique, targets)
        logits = _logits(model, emb)
        rel = torch.full((block.unique.numel(),), block.rel, dtype=torch.long, device=device)
        block.query = model.fuse(emb, mask, rel, iq, logits)
        block.rel_emb = model.relation_embedding(rel)
        candidates = model.fuse(emb, mask, torch.tensor(block.rel, device=device), it, logits)
        block.score = self._score(model, block, candidates)[block.inverse, target_inverse]
        del emb, mask, logits, candidates
        # known answers of every query, the target itself excluded (always ranked)
        rel_b = torch.full_like(block.query_entity, block.rel)
        row, col = (self.filter.tail_pairs(block.query_entity, rel_b) if block.tails
                    else self.filter.head_pairs(rel_b, block.query_entity))
        keep = (col != block.target[row]).nonzero().view(-1)
        order = keep[torch.argsort(col[keep], stable=True)]
        block.removed = (row[order], col[order])
        block.reset(self.tolerance, self.window_limit)

    def _stream(self, model: Any, blocks: List[_Block], device: torch.device) -> None:
        by_rel: Dict[int, List[_Block]] = {}
        for b in blocks:
            by_rel.setdefault(b.rel, []).append(b)
        for start in tqdm(range(0, self.num_entities, self.candidate_chunk), unit='chunk',
                          desc='streamed ranking', disable=None if self.progress else True):
            end = min(start + self.candidate_chunk, self.num_entities)
            ids = torch.arange(start, end, device=device)
            emb, mask, _ = model.embed_entities(ids)
            logits = _logits(model, emb)
            for rel, group in by_rel.items():
                candidates = model.fuse(emb, mask, torch.tensor(rel, device=device),
                                        logits=logits)
                for block in group:
                    self._count(model, block, candidates, start, end)
            del emb, mask, logits

    def _count(self, model: Any, block: _Block, candidates: Tensor, start: int,
               end: int) -> None:
        scores = self._score(model, block, candidates)[block.inverse]  # [b, C]
        inside = ((block.target >= start) & (block.target < end)).nonzero().view(-1)
        if inside.numel():  # from this chunk on, compare with the target's own score here
            block.exact[inside] = scores[inside, block.target[inside] - start]
            block.seen[inside] = True
            block.threshold[inside] = _effective(block.exact[inside])
        target = block.threshold.view(-1, 1)
        if bool(torch.isneginf(target).any()):  # NaN ranks as -inf against such a target
            scores = torch.where(torch.isnan(scores) & torch.isneginf(target),
                                 torch.full_like(scores, float('-inf')), scores)
        greater, tied = scores > target, scores == target
        block.counts[0] += torch.count_nonzero(greater, dim=1)
        block.counts[1] += torch.count_nonzero(tied, dim=1)
        row, col = block.removed
        lo, hi = torch.searchsorted(col, torch.tensor([start, end], device=col.device)).tolist()
        row, col = row[lo:hi], col[lo:hi] - start
        if row.numel():
            block.counts[2].index_add_(0, row, greater[row, col].long())
            block.counts[3].index_add_(0, row, tied[row, col].long())
        if not block.overflow and not bool(block.seen.all()):
            self._keep_window(block, scores, target, row, col)

    def _keep_window(self, block: _Block, scores: Tensor, target: Tensor, removed_row: Tensor,
                     removed_col: Tensor) -> None:
        """Keeps the candidates near the provisional score of the queries whose
        target chunk is still to come."""
        near = ((scores - target).abs() <= block.tolerance.view(-1, 1)) \
            & ~block.seen.view(-1, 1)
        row, col = near.nonzero().unbind(1)
        block.window_size += row.numel()
        if block.window_size > block.window_limit:
            block.overflow, block.window = True, []
        if row.numel() == 0 or block.overflow:
            return
        width = scores.size(1)
        removed = torch.isin(row * width + col, removed_row * width + removed_col)
        block.window.append((row, scores[row, col], removed))

    def _settle(self, block: _Block) -> bool:
        """Corrects the counts of the queries whose target scored otherwise in
        its chunk than in the target pass; ``False`` if the block must be
        streamed again (then against the chunk's scores)."""
        if not bool(block.seen.all()):
            raise RuntimeError("a target was not met in any candidate chunk")
        before, after = _effective(block.score), _effective(block.exact)
        moved = before != after
        if not bool(moved.any()):
            return True
        shift = (after - before)[moved]
        if block.overflow or not bool(torch.isfinite(shift).all()) \
                or bool((shift.abs() > block.tolerance[moved]).any()):
            block.score = torch.where(moved, block.exact, block.score)
            return False
        if block.window:
            row, value, removed = (torch.cat(p) for p in zip(*block.window))
            row, value, removed = (t[moved[row]] for t in (row, value, removed))
            greater = (value > after[row]).long() - (value > before[row]).long()
            tied = (value == after[row]).long() - (value == before[row]).long()
            block.counts[0].index_add_(0, row, greater)
            block.counts[1].index_add_(0, row, tied)
            block.counts[2].index_add_(0, row, greater * removed)
            block.counts[3].index_add_(0, row, tied * removed)
        return True

    def ranks(self, model: Any, triples: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(head_ranks, tail_ranks, raw_head_ranks, raw_tail_ranks)``, each a
        ``[E]`` float CPU tensor aligned with the rows of ``triples``."""
        _check_model_api(model, ('embed_entities', 'fuse', 'relation_embedding', 'scorer'))
        triples = self._check_triples(triples)
        if getattr(model, 'num_entities', self.num_entities) < self.num_entities:
            raise ValueError(f"the model has fewer entities than {self.num_entities}")
        triples = triples.to(device := _model_device(model))
        out = torch.empty(4, triples.size(0), dtype=torch.float, device=device)
        self.passes = 0
        with _eval_mode(model, self.compile):
            blocks = self._blocks(triples)
            for block in blocks:
                self._prepare(model, block)
            todo = blocks
            while todo:
                if self.passes == 2:
                    raise RuntimeError("target scores differ between two streams of the same "
                                       "chunks: the model is not deterministic")
                self._stream(model, todo, device)
                self.passes += 1
                todo = [block for block in todo if not self._settle(block)]
                for block in todo:
                    block.reset(self.tolerance, self.window_limit)
                if todo:
                    warnings.warn(f"{sum(int(b.target.numel()) for b in todo)} queries' target "
                                  f"scores moved beyond the tolerance (or too many candidates "
                                  f"were near them); streaming their blocks again",
                                  RuntimeWarning, stacklevel=2)
            for block in blocks:
                greater, tied, removed_greater, removed_tied = block.counts
                tied = tied - 1  # the target itself
                if self.ties == 'optimistic':
                    tied = removed_tied = torch.zeros_like(tied)
                row = 1 if block.tails else 0
                out[row, block.index] = _combine(greater - removed_greater,
                                                 tied - removed_tied, self.ties)
                out[row + 2, block.index] = _combine(greater, tied, self.ties)
        head_ranks, tail_ranks, raw_head, raw_tail = out.cpu().unbind(0)
        return head_ranks, tail_ranks, raw_head, raw_tail

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_entities={self.num_entities}, '
                f'num_known={self.filter.num_known}, ties={self.ties!r}, '
                f'batch_size={self.batch_size}, candidate_chunk={self.candidate_chunk})')


# -------------------------------------------------- sampled candidates
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


class SampledLinkPredictionEvaluator(_ProtocolEvaluator):
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
    metrics have :meth:`LinkPredictionEvaluator.evaluate`'s shape plus
    ``'protocol': 'sampled'``, ``'num_candidates'`` and ``'candidate_seed'``;
    ``'raw'`` repeats the sampled ranks (there is no unfiltered variant).

    Args:
        num_entities (int): Number of entities :math:`N`.
        known_triples (torch.Tensor): ``[E, 3]`` known true triples.
        num_candidates (int): :math:`K`. (default: :obj:`1000`)
        seed (int): Seed of the candidates. (default: :obj:`0`)
        batch_size (int): Queries per model call. (default: :obj:`64`)
        **kwargs: The other :class:`LinkPredictionEvaluator` arguments.
    """
    protocol = 'sampled'

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

    def ranks(self, model: Any, triples: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(head_ranks, tail_ranks, head_ranks, tail_ranks)``: the sampled
        ranks, twice (the protocol has no raw variant), ``[E]`` float CPU."""
        _check_model_api(model, ('embed_entities', 'fuse_rows', 'relation_embedding', 'scorer'))
        triples = self._check_triples(triples)
        triples = triples.to(device := _model_device(model))
        head, rel, tail = triples.unbind(1)
        out = torch.empty(2, triples.size(0), dtype=torch.float, device=device)
        with _eval_mode(model, self.compile):
            for tails in (False, True):
                query, target = (head, tail) if tails else (tail, head)
                for idx in tqdm(self._chunks(rel), desc='sampled ranking', unit='batch',
                                disable=None if self.progress else True):  # tty only
                    # per batch (a query's candidates do not depend on its batch)
                    cand, valid = self.candidates(triples[idx], tails)
                    out[int(tails), idx] = self._rank(model, query[idx], rel[idx], target[idx],
                                                      cand, valid, tails)
        head_ranks, tail_ranks = out.cpu().unbind(0)
        return head_ranks, tail_ranks, head_ranks.clone(), tail_ranks.clone()

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

    def evaluate(self, model: Any, triples: Tensor, sample: Optional[int] = None,
                 seed: int = 0, level: float = 0.95) -> Dict[str, Any]:
        out = super().evaluate(model, triples, sample, seed, level)
        out.update(num_candidates=self.num_candidates, candidate_seed=self.seed)
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_entities={self.num_entities}, '
                f'num_known={self.filter.num_known}, ties={self.ties!r}, '
                f'num_candidates={self.num_candidates}, seed={self.seed}, '
                f'batch_size={self.batch_size})')
