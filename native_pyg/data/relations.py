"""Triple and relation helpers: keys of triples, inverse edges, the two
forms of a triple batch, and per-relation statistics shared by the data
report, the Bernoulli negative sampler and the per-category evaluation."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

CATEGORIES = ('1-1', '1-N', 'N-1', 'N-N')


def triple_keys(triples: Tensor, num_entities: int, num_relations: int) -> Tensor:
    """One int64 key per ``(h, r, t)`` row: ``(h * R + r) * N + t``."""
    h, r, t = triples.long().unbind(-1)
    return (h * num_relations + r) * num_entities + t


def distinct_triples(triples: Tensor, num_entities: int) -> Tensor:
    """The distinct ``(h, r, t)`` rows of ``[E, 3]`` ``triples``, sorted, as
    ``torch.unique(triples, dim=0)`` gives them: by one int64 key per row
    where it fits (an integer sort), since ``unique(dim=0)`` on millions of
    rows needs about twelve times their bytes; else row-wise."""
    triples = triples.long()
    num_relations = int(triples[:, 1].max()) + 1 if triples.numel() else 1
    if num_entities * num_entities * num_relations >= 2 ** 63:
        return torch.unique(triples, dim=0)
    key = torch.unique(triple_keys(triples, num_entities, num_relations))
    ht, t = key.div(num_entities, rounding_mode='floor'), key % num_entities
    return torch.stack([ht.div(num_relations, rounding_mode='floor'), ht % num_relations, t], 1)


def unpack_triples(head_or_edge_index: Tensor, rel_or_edge_type: Tensor,
                   tail_index: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """``(head_index, rel_type, tail_index)`` from either that triple or an
    edge-index batch ``(edge_index [2, B], edge_type [B])``."""
    if tail_index is None:
        edge_index = head_or_edge_index
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError("expected (head_index, rel_type, tail_index) or "
                             f"(edge_index [2, B], edge_type [B]); got a first argument of "
                             f"shape {tuple(edge_index.shape)} and no tail_index")
        return edge_index[0], rel_or_edge_type, edge_index[1]
    return head_or_edge_index, rel_or_edge_type, tail_index


def add_inverse_edges(edge_index: Tensor, edge_type: Tensor,
                      num_relations: int) -> Tuple[Tensor, Tensor]:
    r"""``(edge_index [2, 2E], edge_type [2E])``: the edges :math:`h \to t`
    (type :math:`r`) followed by their inverses :math:`t \to h` (type
    :math:`r + R`). Edge :math:`i` and edge :math:`E + i` are one triple."""
    return (torch.cat([edge_index, edge_index.flip(0)], dim=1),
            torch.cat([edge_type, edge_type + num_relations]))


def isin_sorted(keys: Tensor, pool: Tensor) -> Tensor:
    """``torch.isin(keys, pool)`` for a sorted, de-duplicated ``pool``, by
    binary search (faster than :func:`torch.isin` on the CPU for large
    int64 key sets)."""
    if pool.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    pos = torch.searchsorted(pool, keys).clamp_(max=pool.numel() - 1)
    return pool[pos] == keys


def relation_tph_hpt(triples: Tensor, num_relations: int) -> Tuple[Tensor, Tensor]:
    r"""Average tails per head (``tph``) and heads per tail (``hpt``) of every
    relation, over the unique ``(head, relation, tail)`` rows of ``triples``:

    .. math::
        \mathrm{tph}_r = \frac{|\{(h,t) : (h,r,t)\}|}{|\{h : (h,r,\cdot)\}|},\qquad
        \mathrm{hpt}_r = \frac{|\{(h,t) : (h,r,t)\}|}{|\{t : (\cdot,r,t)\}|}

    Relations without triples get ``tph = hpt = 1``.
    """
    n = int(triples[:, [0, 2]].max()) + 1 if triples.numel() else 1
    h, r, t = distinct_triples(triples, n).unbind(1)
    count = torch.zeros(num_relations).index_add_(0, r, torch.ones(r.numel()))

    def distinct(entity: Tensor) -> Tensor:  # distinct partners per relation
        rel = torch.unique(r * n + entity) // n
        return torch.zeros(num_relations).index_add_(0, rel, torch.ones(rel.numel()))

    heads, tails = distinct(h), distinct(t)
    tph = torch.where(heads > 0, count / heads.clamp(min=1), torch.ones_like(count))
    hpt = torch.where(tails > 0, count / tails.clamp(min=1), torch.ones_like(count))
    return tph, hpt


def relation_categories(triples: Tensor, num_relations: int,
                        threshold: float = 1.5) -> List[str]:
    """The OpenKE category of every relation: ``'1-1'``, ``'1-N'``, ``'N-1'`` or
    ``'N-N'`` (``tph``/``hpt`` compared with ``threshold``)."""
    tph, hpt = relation_tph_hpt(triples, num_relations)
    many_t, many_h = tph >= threshold, hpt >= threshold
    return [CATEGORIES[2 * int(mh) + int(mt)] for mt, mh in zip(many_t.tolist(), many_h.tolist())]
