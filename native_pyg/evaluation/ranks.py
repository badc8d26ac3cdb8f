"""Rank computation for 1-vs-all link prediction: tie rules, filtering of
known true triples, and the rank-based metrics."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from native_pyg.data.relations import distinct_triples

#: the supported tie rules, the default first
TIES = ('realistic', 'optimistic', 'pessimistic')


def check_ties(ties: str) -> str:
    """Returns ``ties`` if it names a known tie rule, else raises ``ValueError``."""
    if ties not in TIES:
        raise ValueError(f"unknown tie rule {ties!r}; expected one of {TIES}")
    return ties


def rank_from_counts(greater: Tensor, tied: Tensor, ties: str) -> Tensor:
    r"""The rank of a target from the numbers of candidates ``greater``
    (strictly better) and ``tied`` (other than the target, the same score):
    :math:`g + 1` (``'optimistic'``), :math:`g + t + 1` (``'pessimistic'``)
    or :math:`g + t/2 + 1` (``'realistic'``)."""
    greater, tied = greater.to(torch.float), tied.to(torch.float)
    if ties == 'optimistic':
        return greater + 1.0
    if ties == 'pessimistic':
        return greater + tied + 1.0
    return greater + 0.5 * tied + 1.0


def _target_scores(scores: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
    r"""``(scores, target scores [B, 1])`` with NaN read as :math:`-\infty`, so a
    model that produces NaN cannot rank its target first. Comparisons with a
    finite target already treat NaN candidates as worse, so the ``[B, N]``
    scores are only rewritten when some target is NaN or :math:`-\infty`."""
    target_score = scores.gather(1, target.view(-1, 1))
    if bool((torch.isnan(target_score) | torch.isneginf(target_score)).any()):
        scores = torch.where(torch.isnan(scores), torch.full_like(scores, float('-inf')), scores)
        target_score = scores.gather(1, target.view(-1, 1))
    return scores, target_score


def filtered_and_raw_ranks(
    scores: Tensor,
    target: Tensor,
    removed: Optional[Tuple[Tensor, Tensor]] = None,
    ties: str = 'realistic',
) -> Tuple[Tensor, Tensor]:
    """``(filtered ranks [B], raw ranks [B])`` from one comparison pass.

    ``removed`` lists the filtered candidates as ``(row, column)`` index pairs
    without repeats; pairs at a target are ignored. Raw counts come from dense
    ``[B, N]`` comparisons, and the filtered ones subtract the few removed
    candidates, so filtering costs no second dense pass. See
    :func:`rank_from_scores` for the rules.
    """
    scores, target_score = _target_scores(scores, target)
    # count_nonzero is far faster than bool.sum on CPU
    greater = torch.count_nonzero(scores > target_score, dim=1)
    if ties == 'optimistic':
        tied = torch.zeros_like(greater)
    else:
        tied = torch.count_nonzero(scores == target_score, dim=1) - 1  # minus the target
    raw = rank_from_counts(greater, tied, ties)
    if removed is None or removed[0].numel() == 0:
        return raw, raw
    row, col = removed
    value, against = scores[row, col], target_score.view(-1)[row]
    keep = col != target[row]
    removed_greater = torch.zeros_like(greater).index_add_(
        0, row, ((value > against) & keep).long())
    removed_tied = torch.zeros_like(tied).index_add_(0, row, ((value == against) & keep).long())
    return rank_from_counts(greater - removed_greater, tied - removed_tied, ties), raw


def rank_from_scores(
    scores: Tensor,
    target: Tensor,
    filter_mask: Optional[Tensor] = None,
    ties: str = 'realistic',
) -> Tensor:
    r"""The rank of each target among all candidates of its row.

    With :math:`s` the scores of one query (higher = more plausible), :math:`c`
    its target and :math:`F` the filtered candidates,

    .. math::
        g = |\{j \notin F : s_j > s_c\}|,\qquad
        q = |\{j \notin F,\ j \neq c : s_j = s_c\}|

    the optimistic rank is :math:`g + 1` (only strictly better candidates
    count), the pessimistic rank :math:`g + q + 1` (every tied candidate is
    placed first) and the realistic rank their mean :math:`g + q/2 + 1`, the
    expected rank under a random order of the tied candidates.

    NaN scores are read as :math:`-\infty`.

    Args:
        scores (torch.Tensor): ``[B, N]`` candidate scores.
        target (torch.Tensor): ``[B]`` index of the true candidate of each row.
        filter_mask (torch.Tensor, optional): ``[B, N]`` bool, ``True`` at known
            true candidates to remove from the ranking. An entry at the target
            itself is ignored: the target is always ranked.
            (default: :obj:`None`, raw ranks)
        ties (str): ``'realistic'``, ``'optimistic'`` or ``'pessimistic'``.
            (default: :obj:`'realistic'`)

    Returns:
        torch.Tensor: ``[B]`` float ranks, 1 = best.
    """
    check_ties(ties)
    if scores.dim() != 2 or target.shape != (scores.size(0),):
        raise ValueError(f"expected scores [B, N] and target [B], got "
                         f"{tuple(scores.shape)} and {tuple(target.shape)}")
    target = target.to(scores.device, torch.long)
    removed = None
    if filter_mask is not None:
        if filter_mask.shape != scores.shape:
            raise ValueError(f"filter_mask must have the shape of scores {tuple(scores.shape)}, "
                             f"got {tuple(filter_mask.shape)}")
        removed = filter_mask.to(scores.device, torch.bool).nonzero().unbind(1)
    return filtered_and_raw_ranks(scores, target, removed, ties)[0]


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


class KnownTripleFilter:
    r"""Looks up the known answers of batches of link-prediction queries, for
    filtered ranking.

    The known triples are kept as two sorted tables of int64 keys: the unique
    ``(h, r, t)`` rows by :math:`(r \cdot N + h) \cdot N + t` (tail queries,
    answers :math:`t`) and by :math:`(r \cdot N + t) \cdot N + h` (head
    queries, answers :math:`h`). A query's answers are one contiguous range
    of keys, found with :func:`torch.searchsorted`, and each answer is its key
    modulo :math:`N`; batches of queries expand their ranges with
    :func:`torch.repeat_interleave` into ``(query row, answer)`` index pairs
    (or a dense ``[B, N]`` mask built with ``index_put_``), with no Python
    loop per query. Where :math:`R N^2` would pass int64, each table is a
    query key :math:`r \cdot N + h` and the answers beside it.

    Args:
        known_triples (torch.Tensor): ``[E, 3]`` ``(head, relation, tail)`` rows.
        num_entities (int): Number of entities :math:`N`.
    """
    def __init__(self, known_triples: Tensor, num_entities: int):
        known = torch.as_tensor(known_triples).long().view(-1, 3)
        if known.numel():
            ent = known[:, [0, 2]]
            if int(ent.min()) < 0 or int(ent.max()) >= num_entities:
                raise ValueError(f"known triples hold entity ids outside [0, {num_entities})")
            if int(known[:, 1].min()) < 0:
                raise ValueError("known triples hold negative relation ids")
        self.num_entities = n = int(num_entities)
        h, r, t = distinct_triples(known.cpu(), n).unbind(1)
        self.num_known = h.numel()
        num_relations = int(r.max()) + 1 if r.numel() else 1
        #: one key per triple with the answer inside it (half the memory of key and answer)
        self.packed = num_relations * n * n < 2 ** 63
        self._tables = {torch.device('cpu'): (self._sorted(r * n + h, t), self._sorted(r * n + t, h))}

    def _sorted(self, key: Tensor, answer: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        if self.packed:
            return torch.sort(key * self.num_entities + answer).values, None
        order = torch.argsort(key, stable=True)
        return key[order].contiguous(), answer[order].contiguous()

    def _on(self, device: torch.device):
        # Tables are copied to a device once, on first use there.
        device = torch.device(device)
        if device.type == 'cuda' and device.index is None:
            device = torch.device('cuda', torch.cuda.current_device())
        if device not in self._tables:
            cpu = self._tables[torch.device('cpu')]
            self._tables[device] = tuple((k.to(device), None if a is None else a.to(device))
                                         for k, a in cpu)
        return self._tables[device]

    def _pairs(self, table: Tuple[Tensor, Optional[Tensor]],
               query_key: Tensor) -> Tuple[Tensor, Tensor]:
        keys, answers = table
        n = self.num_entities
        # keys are integers: the end of a query's range is the start of the next query key's
        bounds = torch.cat([query_key, query_key + 1])
        start, end = torch.searchsorted(keys, bounds * n if answers is None else bounds).chunk(2)
        count = end - start
        row = torch.repeat_interleave(torch.arange(query_key.numel(), device=query_key.device),
                                      count, output_size=int(count.sum()))
        # position of each answer inside its query's range
        offset = torch.arange(row.numel(), device=row.device) - (count.cumsum(0) - count)[row]
        at = start[row] + offset
        return row, (keys[at] % n if answers is None else answers[at])

    def tail_pairs(self, head_index: Tensor, rel_type: Tensor) -> Tuple[Tensor, Tensor]:
        """``(row, tail)`` index pairs: every known ``(h_row, r_row, tail)``."""
        table = self._on(head_index.device)[0]
        return self._pairs(table, rel_type.long() * self.num_entities + head_index.long())

    def head_pairs(self, rel_type: Tensor, tail_index: Tensor) -> Tuple[Tensor, Tensor]:
        """``(row, head)`` index pairs: every known ``(head, r_row, t_row)``."""
        table = self._on(tail_index.device)[1]
        return self._pairs(table, rel_type.long() * self.num_entities + tail_index.long())

    def _dense(self, pairs: Tuple[Tensor, Tensor], num_queries: int) -> Tensor:
        row, col = pairs
        mask = torch.zeros(num_queries, self.num_entities, dtype=torch.bool, device=row.device)
        mask.index_put_((row, col), torch.ones_like(row, dtype=torch.bool))
        return mask

    def tail_mask(self, head_index: Tensor, rel_type: Tensor) -> Tensor:
        """``[B, N]`` bool: ``True`` at every ``t`` with ``(h, r, t)`` known."""
        return self._dense(self.tail_pairs(head_index, rel_type), head_index.numel())

    def head_mask(self, rel_type: Tensor, tail_index: Tensor) -> Tensor:
        """``[B, N]`` bool: ``True`` at every ``h`` with ``(h, r, t)`` known."""
        return self._dense(self.head_pairs(rel_type, tail_index), tail_index.numel())

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_known={self.num_known}, '
                f'num_entities={self.num_entities})')
