r"""The rank-based metrics: MRR, MR and Hits@k of a set of ranks
(:func:`ranking_metrics`), and the metric dictionary of an evaluation
(:func:`link_prediction_metrics`): per query direction, filtered and raw,
per relation category and per entity group."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor

from native_pyg.data.relations import CATEGORIES

__all__ = ['DIRECTIONS', 'ranking_metrics', 'direction_metrics', 'link_prediction_metrics']

#: the query directions of a result: head queries, tail queries, both together
DIRECTIONS = ('head', 'tail', 'both')


def ranking_metrics(ranks: Tensor, hits: Sequence[int] = (1, 3, 10)) -> Dict[str, float]:
    r"""Mean reciprocal rank, mean rank and Hits@k of a set of ranks:

    .. math::
        \mathrm{MRR} = \frac{1}{n}\sum_i \frac{1}{\mathrm{rank}_i},\quad
        \mathrm{MR} = \frac{1}{n}\sum_i \mathrm{rank}_i,\quad
        \mathrm{Hits@}k = \frac{1}{n}\,|\{i : \mathrm{rank}_i \le k\}|

    Args:
        ranks (torch.Tensor): ``[n]`` ranks (1 = best); may hold halves
            (realistic ties).
        hits (Sequence[int]): The cut-offs :math:`k`. (default: ``(1, 3, 10)``)

    Returns:
        dict: ``{'mrr', 'mr', 'hits@k'...}`` as Python floats.
    """
    if ranks.numel() == 0:
        raise ValueError("cannot compute metrics over zero ranks")
    # float64 so that sums over many ranks stay exact
    ranks = ranks.detach().to('cpu', torch.float64).view(-1)
    out = {'mrr': float((1.0 / ranks).mean()), 'mr': float(ranks.mean())}
    for k in hits:
        out[f'hits@{k}'] = float((ranks <= k).to(torch.float64).mean())
    return out




def direction_metrics(head: Tensor, tail: Tensor,
                      hits: Sequence[int] = (1, 3, 10)) -> Dict[str, Dict[str, float]]:
    """``{'head', 'tail', 'both'}``: the :func:`ranking_metrics` of the head
    ranks, of the tail ranks and of both together."""
    return {'head': ranking_metrics(head, hits), 'tail': ranking_metrics(tail, hits),
            'both': ranking_metrics(torch.cat([head, tail]), hits)}


def link_prediction_metrics(
    triples: Tensor,
    head_ranks: Tensor,
    tail_ranks: Tensor,
    raw_head: Tensor,
    raw_tail: Tensor,
    hits: Sequence[int],
    ties: str,
    relation_category: Optional[Sequence[str]] = None,
    seen_entities: Optional[Tensor] = None,
) -> Dict[str, Any]:
    r"""The metric dictionary of an evaluation of ``triples``.

    Args:
        triples (torch.Tensor): ``[E, 3]`` ``(head, relation, tail)`` rows, as checked
            by the evaluator.
        head_ranks (torch.Tensor): ``[E]`` filtered ranks of the head queries.
        tail_ranks (torch.Tensor): ``[E]`` filtered ranks of the tail queries.
        raw_head (torch.Tensor): ``[E]`` raw ranks of the head queries.
        raw_tail (torch.Tensor): ``[E]`` raw ranks of the tail queries.
        hits (Sequence[int]): The Hits@k cut-offs.
        ties (str): The tie rule the ranks followed (recorded).
        relation_category (Sequence[str], optional): The category of each
            relation id, for ``'per_category'``. (default: :obj:`None`)
        seen_entities (torch.Tensor, optional): ``[N]`` bool, the entities of
            the training triples, for ``'per_group'``. (default: :obj:`None`)

    Returns:
        dict: ``{'head', 'tail', 'both'}`` filtered metrics
        (:func:`direction_metrics`), ``'raw'`` with the same three
        unfiltered, ``'per_category'`` (``{category: {'head', 'tail',
        'both', 'count'}}``, empty without categories), ``'per_group'`` (the
        same for ``'seen'`` triples, whose head and tail are both seen, and
        ``'unseen'`` ones; empty without ``seen_entities``),
        ``'num_triples'`` and ``'ties'``: JSON-serialisable Python scalars.
    """
    out: Dict[str, Any] = direction_metrics(head_ranks, tail_ranks, hits)
    out['raw'] = direction_metrics(raw_head, raw_tail, hits)
    out['per_category'] = {}
    if relation_category is not None:
        rel = triples[:, 1]
        if int(rel.max()) >= len(relation_category):
            raise ValueError(f"relation id {int(rel.max())} has no category "
                             f"({len(relation_category)} given)")
        cat_id = torch.tensor([CATEGORIES.index(c) for c in relation_category])[rel]
        for i, name in enumerate(CATEGORIES):
            sel = cat_id == i
            if bool(sel.any()):
                group = direction_metrics(head_ranks[sel], tail_ranks[sel], hits)
                group['count'] = int(sel.sum())
                out['per_category'][name] = group
    out['per_group'] = {}
    if seen_entities is not None:
        both_seen = seen_entities[triples[:, 0]] & seen_entities[triples[:, 2]]
        for name, sel in (('seen', both_seen), ('unseen', ~both_seen)):
            if bool(sel.any()):
                group = direction_metrics(head_ranks[sel], tail_ranks[sel], hits)
                group['count'] = int(sel.sum())
                out['per_group'][name] = group
    out['num_triples'] = int(triples.size(0))
    out['ties'] = ties
    return out
