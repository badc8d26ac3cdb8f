r"""1-vs-all scoring: every entity as the candidate tail (or head) of a
query, as filtered ranking needs, with what an evaluation may reuse kept in
a :class:`CandidateCache`."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.nn import Module

from native_pyg.nn.embedding_cache import EmbeddingCache, cached_value


class CandidateCache(EmbeddingCache):
    r"""What 1-vs-all scoring reuses while :meth:`NativE.cached_entities
    <native_pyg.nn.NativE.cached_entities>` is active: the structural
    embeddings of all entities (a GNN encoder runs once), the modality
    embeddings of all entities, ReDAF's (relation-independent) attention
    logits, and all entities fused under the last relation. Everything is
    computed without gradient, and dropped when the model's entity inputs
    change (their ``version``) or :meth:`clear` is called (parameters
    changed).

    Args:
        version (int, optional): The entity inputs' version that
            ``structure`` belongs to. (default: :obj:`None`)
        structure (torch.Tensor, optional): Precomputed ``[N, De]``
            structural embeddings of all entities (e.g. by layer-wise
            inference), kept under ``'structure'`` for ``version``.
            (default: :obj:`None`, computed when first asked for)
    """

    serves_one_vs_all = True

    def __init__(self, version: Optional[int] = None, structure: Optional[Tensor] = None):
        super().__init__(version)
        if structure is not None:
            self._store['structure'] = structure


def _all_entities(model: Module, cache: Optional[EmbeddingCache]) -> Tuple[Tensor, Tensor]:
    return cached_value(cache, 'all', model.inputs.version,
                        lambda: model.modality_embeddings(None))


def _all_logits(model: Module, emb: Tensor, cache: Optional[EmbeddingCache]) -> Optional[Tensor]:
    if cache is None or not model.uses_relation_guided_fusion:
        return None
    return cache.get('logits', model.inputs.version, lambda: model.attention_logits(emb))


def _candidates(model: Module, rel: int, emb: Tensor, mask: Tensor, logits: Optional[Tensor],
                cache: Optional[EmbeddingCache]) -> Tensor:
    """All ``N`` entities fused under relation ``rel`` (one ReDAF call)."""
    rel_index = torch.tensor(rel, device=model.device)
    if cache is None:
        return model.fuse(emb, mask, rel_index)
    return cache.get_last('cand', rel, model.inputs.version,
                          lambda: model.fuse(emb, mask, rel_index, logits=logits))


def score_one_vs_all(model: Module, query_index: Tensor, rel_type: Tensor, tails: bool,
                     chunk_size: Optional[int] = None,
                     cache: Optional[EmbeddingCache] = None) -> Tensor:
    r"""``[B, N]`` scores of every entity as the tail (``tails``) of
    :math:`(q_b, r_b, ?)` or as the head of :math:`(?, r_b, q_b)`. Per
    distinct relation all entities are fused under it once; candidates are
    scored in memory-bounded chunks (``chunk_size`` candidates, ``None`` =
    automatic). Only the model's public methods are used
    (``docs/architecture.md``, "NativE's public surface").

    Args:
        model (NativE): The model.
        query_index (torch.Tensor): ``[B]`` query entities.
        rel_type (torch.Tensor): ``[B]`` relations, or one for all.
        tails (bool): Score candidate tails (else heads).
        chunk_size (int, optional): Candidates per chunk.
            (default: :obj:`None`, automatic)
        cache (EmbeddingCache, optional): Reused across calls, one that
            :attr:`~EmbeddingCache.serves_one_vs_all`. (default: :obj:`None`)
    """
    query_index = torch.as_tensor(query_index, device=model.device).long().view(-1)
    rel_type = torch.as_tensor(rel_type, device=model.device).long().view(-1)
    rel_type = rel_type.expand(query_index.numel()) if rel_type.numel() == 1 else rel_type
    emb, mask = _all_entities(model, cache)
    logits = _all_logits(model, emb, cache)
    query = model.fuse(emb, mask, rel_type, query_index, logits)  # ids index emb rows
    rel = model.relation_embedding(rel_type)
    scores, order = [], []
    for r in torch.unique(rel_type).tolist():  # each relation's candidates fused once
        rows = (rel_type == r).nonzero().view(-1)
        cand = _candidates(model, r, emb, mask, logits, cache)
        scores.append(model.scorer.score_tails(query[rows], rel[rows], cand, chunk_size)
                      if tails else
                      model.scorer.score_heads(rel[rows], query[rows], cand, chunk_size))
        order.append(rows)
    if len(scores) == 1:
        return scores[0]
    return torch.cat(scores)[torch.argsort(torch.cat(order))]
