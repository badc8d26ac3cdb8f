import pytest
import torch

from native_pyg.evaluation import LinkPredictionEvaluator, ranking_metrics
from tests.evaluation.tables import random_problem


def test_ranking_metrics_formulas():
    ranks = torch.tensor([1.0, 2.0, 4.0, 10.0, 20.0])
    m = ranking_metrics(ranks, hits=(1, 3, 10))
    assert m['mr'] == pytest.approx((1 + 2 + 4 + 10 + 20) / 5)
    assert m['mrr'] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 10 + 1 / 20) / 5)
    assert m['hits@1'] == pytest.approx(1 / 5)
    assert m['hits@3'] == pytest.approx(2 / 5)
    assert m['hits@10'] == pytest.approx(4 / 5)
    # a realistic half rank is not within a cut-off it exceeds
    assert ranking_metrics(torch.tensor([1.5]), hits=(1, 2))['hits@1'] == 0.0
    assert ranking_metrics(torch.tensor([1.5]), hits=(1, 2))['hits@2'] == 1.0
    with pytest.raises(ValueError):
        ranking_metrics(torch.tensor([]))


def test_both_averages_the_two_directions():
    known, test, model = random_problem(seed=3)
    m = LinkPredictionEvaluator(12, known).evaluate(model, test)
    for key in ('mrr', 'mr', 'hits@1', 'hits@3', 'hits@10'):
        assert m['both'][key] == pytest.approx((m['head'][key] + m['tail'][key]) / 2)
        assert m['raw']['both'][key] == pytest.approx(
            (m['raw']['head'][key] + m['raw']['tail'][key]) / 2)


def test_per_category_groups_by_relation():
    known, test, model = random_problem(seed=4)
    categories = ['1-1', 'N-N', '1-1']
    ev = LinkPredictionEvaluator(12, known, relation_category=categories)
    m = ev.evaluate(model, test)
    head, tail, _, _ = ev.ranks(model, test)
    in_11 = (test[:, 1] == 0) | (test[:, 1] == 2)
    assert set(m['per_category']) == {'1-1', 'N-N'}
    assert m['per_category']['1-1']['count'] == int(in_11.sum())
    assert m['per_category']['N-N']['count'] == int((~in_11).sum())
    expected = ranking_metrics(torch.cat([head[~in_11], tail[~in_11]]))
    assert m['per_category']['N-N']['both'] == pytest.approx(expected)
    assert m['per_category']['1-1']['tail'] == pytest.approx(ranking_metrics(tail[in_11]))
    assert LinkPredictionEvaluator(12, known).evaluate(model, test)['per_category'] == {}
    with pytest.raises(ValueError):
        LinkPredictionEvaluator(12, known, relation_category=['1-1', 'many'])
    with pytest.raises(ValueError, match='category'):
        LinkPredictionEvaluator(12, known, relation_category=['1-1']).evaluate(model, test)
