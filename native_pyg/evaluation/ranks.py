r"""The rank of a target among scored candidates: the tie rules
(:data:`TIES`), ranks from candidate counts (:func:`rank_from_counts`) and
from rows of scores, filtered and raw in one pass
(:func:`filtered_and_raw_ranks`, :func:`rank_from_scores`)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

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
