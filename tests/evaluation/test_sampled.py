import pytest
import torch

from native_pyg.evaluation import (TIES, LinkPredictionEvaluator, SampledLinkPredictionEvaluator,
                                   format_metrics)
from tests.evaluation.native_problems import N, build, problem

pytestmark = pytest.mark.usefixtures('one_thread')


def test_sampled_candidates_are_filtered_distinct_and_seeded():
    train, known, test = problem()
    known_set = {tuple(x) for x in known.tolist()}
    ev = SampledLinkPredictionEvaluator(N, known, num_candidates=6, seed=11)
    for tails in (False, True):
        cand, valid = ev.candidates(test, tails)
        assert cand.shape == (test.size(0), 6) and bool(valid.all())
        for (h, r, t), row in zip(test.tolist(), cand.tolist()):
            assert len(set(row)) == len(row)
            for c in row:
                assert 0 <= c < N
                assert (h, r, c) not in known_set if tails else (c, r, t) not in known_set
                assert c != (t if tails else h)
        # a function of (seed, direction, triple) alone: order and subsets do not matter
        perm = torch.randperm(test.size(0), generator=torch.Generator().manual_seed(0))
        assert torch.equal(ev.candidates(test[perm], tails)[0], cand[perm])
        assert torch.equal(ev.candidates(test[:5], tails)[0], cand[:5])
        again = SampledLinkPredictionEvaluator(N, known, num_candidates=6, seed=11)
        assert torch.equal(again.candidates(test, tails)[0], cand)
        other = SampledLinkPredictionEvaluator(N, known, num_candidates=6, seed=12)
        assert not torch.equal(other.candidates(test, tails)[0], cand)


def test_sampled_candidates_are_uniform():
    n = 100
    g = torch.Generator().manual_seed(0)
    test = torch.stack([torch.randint(n, (2000,), generator=g), torch.zeros(2000).long(),
                        torch.randint(n, (2000,), generator=g)], dim=1)
    ev = SampledLinkPredictionEvaluator(n, test[:1], num_candidates=10, seed=0)
    cand, valid = ev.candidates(test, tails=True)
    counts = torch.bincount(cand[valid], minlength=n).double()
    expected = counts.sum() / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 1.5 * (n - 1)  # about n - 1 for uniform draws
    first = torch.bincount(cand[:, 0], minlength=n).double()
    assert float(((first - 20.0) ** 2 / 20.0).sum()) < 1.5 * (n - 1)


@pytest.mark.parametrize('kind', ['features', 'integer'])
@pytest.mark.parametrize('ties', TIES)
def test_sampled_with_every_candidate_is_the_full_filtered_rank(kind, ties):
    train, known, test = problem()
    net = build(kind, train)
    head, tail, _, _ = LinkPredictionEvaluator(N, known, ties=ties).ranks(net, test)
    ev = SampledLinkPredictionEvaluator(N, known, num_candidates=N, ties=ties, batch_size=7)
    s_head, s_tail, raw_head, raw_tail = ev.ranks(net, test)
    assert torch.equal(s_head, head) and torch.equal(s_tail, tail)
    assert torch.equal(raw_head, s_head) and torch.equal(raw_tail, s_tail)


def test_sampled_ranks_and_metrics():
    train, known, test = problem()
    net = build('features', train)
    k = 5
    ev = SampledLinkPredictionEvaluator(N, known, num_candidates=k, seed=1, batch_size=4)
    head, tail, _, _ = ev.ranks(net, test)
    ranks = torch.cat([head, tail])
    assert bool((ranks >= 1).all()) and bool((ranks <= k + 1).all())
    # batch size and order change nothing
    other = SampledLinkPredictionEvaluator(N, known, num_candidates=k, seed=1, batch_size=64)
    perm = torch.randperm(test.size(0), generator=torch.Generator().manual_seed(1))
    h2, t2, _, _ = other.ranks(net, test[perm])
    assert torch.equal(h2, head[perm]) and torch.equal(t2, tail[perm])
    m = ev.evaluate(net, test)
    assert m['protocol'] == 'sampled' and m['num_candidates'] == k
    assert m['both']['mrr'] == pytest.approx(float((1.0 / ranks.double()).mean()))
    assert set(m['both']) == {'mrr', 'mr', 'hits@1', 'hits@3', 'hits@10'}
    assert m['both']['hits@10'] == 1.0  # 6 candidates at most
    assert 'MRR' in format_metrics(m)
    with pytest.raises(ValueError, match='num_candidates'):
        SampledLinkPredictionEvaluator(N, known, num_candidates=0)
