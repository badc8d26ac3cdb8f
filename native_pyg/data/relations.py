"""Per-relation statistics shared by the data report, the Bernoulli negative
sampler and the per-category evaluation."""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor

CATEGORIES = ('1-1', '1-N', 'N-1', 'N-N')


def relation_tph_hpt(triples: Tensor, num_relations: int) -> Tuple[Tensor, Tensor]:
    r"""Average tails per head (``tph``) and heads per tail (``hpt``) of every
    relation, over the unique ``(head, relation, tail)`` rows of ``triples``:

    .. math::
        \mathrm{tph}_r = \frac{|\{(h,t) : (h,r,t)\}|}{|\{h : (h,r,\cdot)\}|},\qquad
        \mathrm{hpt}_r = \frac{|\{(h,t) : (h,r,t)\}|}{|\{t : (\cdot,r,t)\}|}

    Relations without triples get ``tph = hpt = 1``.
    """
    triples = torch.unique(triples.long(), dim=0)
    h, r, t = triples.unbind(1)
    ones = torch.ones_like(r, dtype=torch.float)
    count = torch.zeros(num_relations).index_add_(0, r, ones)
    def distinct(pairs: Tensor) -> Tensor:  # how many distinct partners per relation
        rel = torch.unique(pairs, dim=0)[:, 0]
        return torch.zeros(num_relations).index_add_(0, rel, torch.ones(rel.numel()))

    heads = distinct(torch.stack([r, h], 1))
    tails = distinct(torch.stack([r, t], 1))
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
