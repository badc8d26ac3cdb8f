r"""The streamed protocol (:class:`StreamingLinkPredictionEvaluator`): the
full protocol's filtered 1-vs-all ranks over chunks of candidates, with
bounded memory, for millions of entities (e.g. features read from disk)."""
from __future__ import annotations

import warnings
from typing import Any, ContextManager, Dict, List, Optional, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from native_pyg.evaluation.base import RankingEvaluator
from native_pyg.evaluation.ranks import rank_from_counts
from native_pyg.nn.layerwise import entities_encoded_once
from native_pyg.nn.redaf import FUSE_TILE, weighted_sum

__all__ = ['StreamingLinkPredictionEvaluator']

#: the most scores and fusion weights (their number per candidate x candidates) held for
#: one chunk (128 MiB of float32)
SCORE_BUDGET = 2 ** 25


def _logits(model: Any, emb: Tensor) -> Optional[Tensor]:
    """ReDAF's attention logits of ``emb`` (``None`` without), once per
    embedded batch as on the in-memory path (the same float path)."""
    return model.attention_logits(emb)


def _effective(score: Tensor) -> Tensor:
    r"""Scores as ranking reads them: NaN is :math:`-\infty`."""
    return torch.where(torch.isnan(score), torch.full_like(score, float('-inf')), score)


class _Block:
    """The queries of one relation and direction, at most ``batch_size``,
    with what streaming keeps for them across candidate chunks."""

    def __init__(self, index: Tensor, tails: bool, rel: int, query_entity: Tensor,
                 target: Tensor):
        self.index, self.tails, self.rel = index, tails, rel
        self.query_entity, self.target = query_entity[index], target[index]
        self.unique, self.inverse = torch.unique(self.query_entity, return_inverse=True)
        # fused unique queries [u, De], their scorer-prepared form, the provisional
        # target scores [b], the known answers (row, col) sorted by col, and the
        # unique queries' scores against the chunk being streamed [u, C]
        self.query = self.prepared = self.score = self.removed = self.chunk = None

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


class _RelationGroups:
    """The blocks of each relation and their prepared queries, concatenated
    (head and tail queries alike: both are scored against the candidates
    fused under the relation) where the scorer prepares them as tensors."""

    def __init__(self, blocks: List[_Block]):
        self.blocks: Dict[int, List[_Block]] = {}
        for b in blocks:
            self.blocks.setdefault(b.rel, []).append(b)
        self.relations = list(self.blocks)
        self.queries = {rel: torch.cat([b.prepared for b in group])
                        if all(torch.is_tensor(b.prepared) for b in group) else None
                        for rel, group in self.blocks.items()}
        #: each block's rows of its relation's concatenated queries
        self.rows: Dict[int, List[slice]] = {}
        for rel, group in self.blocks.items():
            ends = torch.tensor([b.unique.numel() for b in group]).cumsum(0).tolist()
            self.rows[rel] = [slice(end - b.unique.numel(), end) for b, end in zip(group, ends)]


class StreamingLinkPredictionEvaluator(RankingEvaluator):
    r"""Filtered (and raw) 1-vs-all ranks, those of
    :class:`~native_pyg.evaluation.LinkPredictionEvaluator`, with memory
    bounded for millions of entities (e.g. features memory-mapped from disk).

    The outermost loop runs over chunks of ``candidate_chunk`` entities, so
    every entity's features are read and projected once per evaluation:
    per chunk, the modality embeddings are computed once
    (``model.embed_entities(chunk)``); then, a tile of
    :data:`~native_pyg.nn.redaf.FUSE_TILE` candidates at a time (in cache),
    the tile is fused under each relation of the queries and scored against
    the queries of that relation (prepared once per block of ``batch_size``
    queries of one relation and direction, ``scorer.query``); each query
    counts the chunk's candidates scoring above and equal to its target,
    and those of them that are known answers (filtered out). Memory: one
    chunk's embeddings, the fusion weights of each relation and the unique
    queries' scores against it (at most :data:`SCORE_BUDGET` elements;
    fewer candidates per chunk where more queries and relations would pass
    it).

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
    candidates. A structural GNN encoder runs once per evaluation, by
    layer-wise inference (:func:`~native_pyg.nn.layerwise_structural_embeddings`,
    ``candidate_chunk`` targets per batch) where it has the per-layer API.

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
        **kwargs: The other :class:`~native_pyg.evaluation.base.RankingEvaluator`
            arguments (``relation_category``, ``ties``, ``hits``, ``progress``
            (a bar over chunks), ``compile``, ``seen_entities``).
    """
    protocol = 'streamed'
    model_api = ('embed_entities', 'fuse', 'relation_embedding', 'scorer', 'attention_logits')
    _repr_keys = ('num_entities', 'num_known', 'ties', 'batch_size', 'candidate_chunk')

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
        return model.scorer.against(block.prepared, candidates)

    def _prepare(self, model: Any, block: _Block) -> None:
        """The block's fused queries, relation embeddings, provisional target
        scores (each target scored as a candidate) and known answers."""
        device = block.target.device
        targets, target_inverse = torch.unique(block.target, return_inverse=True)
        emb, mask, (iq, it) = model.embed_entities(block.unique, targets)
        logits = _logits(model, emb)
        rel = torch.full((block.unique.numel(),), block.rel, dtype=torch.long, device=device)
        block.query = model.fuse(emb, mask, rel, iq, logits)
        block.prepared = model.scorer.query(block.query, model.relation_embedding(rel),
                                            block.tails)
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

    def _width(self, blocks: List[_Block], num_modalities: int) -> int:
        """Candidates per chunk: ``candidate_chunk``, fewer where what is held
        per candidate of a chunk (a score per unique query, fusion weights
        per relation) would pass :data:`SCORE_BUDGET` elements."""
        queries = sum(int(b.unique.numel()) for b in blocks)
        per_candidate = max(1, queries + num_modalities * len({b.rel for b in blocks}))
        return min(self.candidate_chunk, max(FUSE_TILE, SCORE_BUDGET // per_candidate))

    def _stream(self, model: Any, blocks: List[_Block], device: torch.device) -> None:
        groups = _RelationGroups(blocks)
        rel_index = {rel: torch.tensor(rel, device=device) for rel in groups.relations}
        width = self._width(blocks, len(getattr(model, 'modality_names', ())) or 1)
        for start, end in tqdm(self._candidate_spans(model, width), unit='chunk',
                               desc='streamed ranking', disable=None if self.progress else True):
            emb, mask, _ = model.embed_entities(torch.arange(start, end, device=device))
            if start == end:  # a process out of candidates still joins a sharded table's lookup
                continue
            logits = _logits(model, emb)
            weights = {rel: model.fusion_weights(emb, mask, rel_index[rel], logits)
                       for rel in groups.relations}
            del mask, logits
            scores = {rel: emb.new_empty(q.size(0), end - start) if torch.is_tensor(q) else None
                      for rel, q in groups.queries.items()}
            # tiles outside, relations inside: a tile's modality rows stay in cache while
            # it is fused under every relation (fusing the whole chunk per relation reads
            # all of it from memory once per relation, 6x slower)
            for t in range(0, end - start, FUSE_TILE):
                tile = slice(t, t + FUSE_TILE)
                e = emb[tile]
                for rel, query in groups.queries.items():
                    candidates = weighted_sum(e, weights[rel][tile])
                    if scores[rel] is not None:  # the relation's queries scored at once
                        scores[rel][:, tile] = model.scorer.against(query, candidates)
                    else:
                        for block in groups.blocks[rel]:
                            if block.chunk is None:
                                block.chunk = emb.new_empty(block.unique.numel(), end - start)
                            block.chunk[:, tile] = self._score(model, block, candidates)
            del emb, weights
            for rel, group in groups.blocks.items():
                for block, rows in zip(group, groups.rows[rel]):
                    chunk = block.chunk if scores[rel] is None else scores[rel][rows]
                    self._count(block, chunk[block.inverse], start, end)
                    block.chunk = None

    def _candidate_spans(self, model: Any, width: int) -> List[Tuple[int, int]]:
        """The chunks ``(start, end)`` of candidates streamed: all
        :math:`N` entities, ``width`` at a time."""
        return [(start, min(start + width, self.num_entities))
                for start in range(0, self.num_entities, width)]

    def _share_targets(self, blocks: List[_Block]) -> None:
        """After a stream, before settling: every target's score in its own
        chunk is known (a sharded evaluation shares those of its processes
        here)."""

    def _agreed(self, blocks: List[_Block], redo: List[bool]) -> List[bool]:
        """Which blocks are streamed again (a sharded evaluation: those any
        process must stream again)."""
        return redo

    def _totals(self, blocks: List[_Block]) -> None:
        """The blocks' counts over every candidate (a sharded evaluation
        sums those of its processes here)."""

    def _count(self, block: _Block, scores: Tensor, start: int, end: int) -> None:
        """Counts the block's ``[b, C]`` scores against chunk ``start:end``."""
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

    def check_model(self, model: Any) -> None:
        """Raises ``TypeError`` if ``model`` lacks the API the protocol uses,
        ``ValueError`` if it has fewer entities than the candidates."""
        super().check_model(model)
        if getattr(model, 'num_entities', self.num_entities) < self.num_entities:
            raise ValueError(f"the model has fewer entities than {self.num_entities}")

    def encoded_once(self, model: Any, progress: Optional[bool] = None) -> ContextManager[None]:
        """The structural encoder run once for every evaluation inside, by
        layer-wise inference (:func:`~native_pyg.nn.layerwise.entities_encoded_once`,
        ``candidate_chunk`` targets per batch; ``progress`` defaults to the
        evaluator's)."""
        return entities_encoded_once(model, self.candidate_chunk,
                                     self.progress if progress is None else progress)

    def _rank_triples(self, model: Any, triples: Tensor) -> Tensor:
        device = triples.device
        out = torch.empty(4, triples.size(0), dtype=torch.float, device=device)
        self.passes = 0
        with self.encoded_once(model):
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
                self._share_targets(todo)
                redo = self._agreed(todo, [not self._settle(block) for block in todo])
                todo = [block for block, again in zip(todo, redo) if again]
                for block in todo:
                    block.reset(self.tolerance, self.window_limit)
                if todo:
                    warnings.warn(f"{sum(int(b.target.numel()) for b in todo)} queries' target "
                                  f"scores moved beyond the tolerance (or too many candidates "
                                  f"were near them); streaming their blocks again",
                                  RuntimeWarning, stacklevel=3)  # the caller of ranks()
            self._totals(blocks)
            for block in blocks:
                greater, tied, removed_greater, removed_tied = block.counts
                tied = tied - 1  # the target itself
                if self.ties == 'optimistic':
                    tied = removed_tied = torch.zeros_like(tied)
                row = 1 if block.tails else 0
                out[row, block.index] = rank_from_counts(greater - removed_greater,
                                                         tied - removed_tied, self.ties)
                out[row + 2, block.index] = rank_from_counts(greater, tied, self.ties)
        return out
