import pytest
import torch

from native_pyg.evaluation import rank_from_scores
from tests.evaluation.tables import reference_rank


def test_rank_counts_strictly_better_candidates():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.8, 0.2],
                           [0.7, 0.1, 0.2, 0.3, 0.4]])
    ranks = rank_from_scores(scores, torch.tensor([2, 0]))
    assert ranks.tolist() == [3.0, 1.0]


def test_filter_removes_other_true_candidates_but_not_target():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.8, 0.2]])
    target = torch.tensor([2])
    mask = torch.tensor([[False, True, False, False, False]])
    assert rank_from_scores(scores, target, mask).tolist() == [2.0]
    # the target flagged as known is still ranked (and does not count as better)
    mask_with_target = torch.tensor([[False, True, True, True, False]])
    assert rank_from_scores(scores, target, mask_with_target).tolist() == [1.0]
    # filtering a candidate below the target changes nothing
    below = torch.tensor([[True, False, False, False, True]])
    assert rank_from_scores(scores, target, below).tolist() == [3.0]
    assert not mask_with_target[0, 0] and mask_with_target[0, 2]  # caller's mask untouched


@pytest.mark.parametrize('ties,expected', [('optimistic', 1.0), ('pessimistic', 3.0),
                                           ('realistic', 2.0)])
def test_target_tied_with_two_others(ties, expected):
    scores = torch.tensor([[0.5, 0.1, 0.5, 0.5, 0.2]])
    assert rank_from_scores(scores, torch.tensor([0]), ties=ties).tolist() == [expected]


@pytest.mark.parametrize('ties,expected', [('optimistic', 2.0), ('pessimistic', 3.0),
                                           ('realistic', 2.5)])
def test_ties_after_better_candidates_and_filtering(ties, expected):
    # one better candidate (index 1), ties at 0 and 3, filtered tie at 4
    scores = torch.tensor([[0.5, 0.9, 0.1, 0.5, 0.5]])
    mask = torch.tensor([[False, False, False, False, True]])
    assert rank_from_scores(scores, torch.tensor([3]), mask, ties=ties).tolist() == [expected]


def test_nan_scores_rank_last():
    scores = torch.tensor([[float('nan'), 0.3, 0.2, 0.1]])
    assert rank_from_scores(scores, torch.tensor([0]), ties='optimistic').tolist() == [4.0]
    assert rank_from_scores(scores, torch.tensor([1])).tolist() == [1.0]
    # a NaN target ties with the other NaN and -inf candidates
    scores = torch.tensor([[float('nan'), 0.3, float('nan'), float('-inf')]])
    assert rank_from_scores(scores, torch.tensor([0])).tolist() == [3.0]
    assert rank_from_scores(scores, torch.tensor([3]), ties='pessimistic').tolist() == [4.0]


def test_rank_rejects_unknown_tie_rule_and_bad_shapes():
    with pytest.raises(ValueError, match='tie rule'):
        rank_from_scores(torch.zeros(1, 3), torch.tensor([0]), ties='average')
    with pytest.raises(ValueError):
        rank_from_scores(torch.zeros(2, 3), torch.tensor([0]))
    with pytest.raises(ValueError):
        rank_from_scores(torch.zeros(1, 3), torch.tensor([0]), torch.zeros(1, 2, dtype=torch.bool))


def test_rank_matches_reference_on_random_scores():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (40, 30), generator=gen).float()
    target = torch.randint(30, (40,), generator=gen)
    mask = torch.rand(40, 30, generator=gen) < 0.2
    for ties in ('optimistic', 'pessimistic', 'realistic'):
        ranks = rank_from_scores(scores, target, mask, ties)
        expected = [reference_rank(scores[i], int(target[i]),
                                   set(mask[i].nonzero().view(-1).tolist()), ties)
                    for i in range(40)]
        assert ranks.tolist() == expected
