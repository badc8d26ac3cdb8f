import math

import pytest
import torch

from native_pyg.evaluation import (LinkPredictionEvaluator, SampledLinkPredictionEvaluator,
                                   StreamingLinkPredictionEvaluator, confidence_interval,
                                   evaluate_sample, sample_queries)
from tests.evaluation.native_problems import N, build, problem

pytestmark = pytest.mark.usefixtures('one_thread')


def test_sample_queries_is_seeded_and_without_replacement():
    triples = torch.arange(300).view(100, 3)
    a, index = sample_queries(triples, 30, seed=4, return_index=True)
    assert a.shape == (30, 3) and torch.equal(a, triples[index])
    assert index.unique().numel() == 30 and torch.equal(index, index.sort().values)
    assert torch.equal(sample_queries(triples, 30, seed=4), a)
    assert not torch.equal(sample_queries(triples, 30, seed=5), a)
    assert torch.equal(sample_queries(triples, 500, seed=4), triples)
    with pytest.raises(ValueError):
        sample_queries(triples, 0)


def population_ranks(size=8000):
    g = torch.Generator().manual_seed(0)
    return torch.exp(torch.rand(size, 2, generator=g) * math.log(500)).floor()


def test_confidence_interval_shrinks_and_covers_the_full_mrr():
    ranks = population_ranks()
    full = float((1.0 / ranks).mean())
    widths, covered = {}, 0
    for n in (100, 800, 4000):
        ws = []
        for seed in range(60):
            sub = sample_queries(ranks, n, seed)
            ci = confidence_interval(sub, population=ranks.size(0))
            ws.append(ci['mrr'])
            if n == 100:
                covered += abs(float((1.0 / sub).mean()) - full) <= ci['mrr']
        widths[n] = sum(ws) / len(ws)
    assert widths[100] > widths[800] > widths[4000] > 0
    assert covered >= 51  # about 57 of 60 for a 95% interval
    ci = confidence_interval(ranks, population=ranks.size(0))
    assert all(v == 0.0 for v in ci.values())  # the whole population
    assert set(ci) == {'mrr', 'mr', 'hits@1', 'hits@3', 'hits@10'}
    sub = sample_queries(ranks, 200, 0)
    assert confidence_interval(1.0 / sub, reciprocal=True) == pytest.approx(
        confidence_interval(sub))
    assert confidence_interval(sub, level=0.99)['mrr'] > confidence_interval(sub)['mrr']
    assert confidence_interval(sub[:1], population=10)['mrr'] == math.inf


def test_evaluate_on_sampled_queries_reports_the_interval():
    train, known, test = problem()
    net = build('structure', train)
    ev = StreamingLinkPredictionEvaluator(N, known, candidate_chunk=16)
    m = ev.evaluate(net, test, sample=20, seed=3)
    assert m['sampled_queries'] == 20 and m['total_queries'] == test.size(0)
    assert m['num_triples'] == 20 and set(m['ci95']) >= {'mrr', 'hits@10'}
    subset = sample_queries(test, 20, 3)
    direct = LinkPredictionEvaluator(N, known).evaluate(net, subset)
    assert m['both'] == direct['both']
    # any evaluator, through evaluate_sample
    m2 = evaluate_sample(LinkPredictionEvaluator(N, known), net, test, sample=20, seed=3)
    assert m2['both'] == direct['both'] and m2['ci95'] == m['ci95']
    whole = ev.evaluate(net, test, sample=10 ** 6)
    assert 'ci95' not in whole and 'sampled_queries' not in whole
    sampled = SampledLinkPredictionEvaluator(N, known, num_candidates=4).evaluate(
        net, test, sample=10)
    assert sampled['protocol'] == 'sampled' and sampled['sampled_queries'] == 10
