import pytest
import torch

from native_pyg.evaluation import LinkPredictionEvaluator
from native_pyg.evaluation.full import distinct_queries
from tests.evaluation.tables import one_relation_model, random_problem, reference_ranks


def test_evaluator_head_and_tail_filtered_and_raw():
    # tail query (0, 0, ?): target 2; entities 1 and 3 score higher, both known
    # head query (?, 0, 2): target 0; entities 3 and 4 score higher, 4 known
    model = one_relation_model(5, tail_rows={0: [0.1, 0.9, 0.5, 0.8, 0.2]},
                               head_rows={2: [0.3, 0.2, 0.1, 0.6, 0.7]})
    known = torch.tensor([[0, 0, 1], [0, 0, 3], [0, 0, 2], [4, 0, 2]])
    test = torch.tensor([[0, 0, 2]])
    ev = LinkPredictionEvaluator(5, known, ties='optimistic')
    head, tail, raw_head, raw_tail = ev.ranks(model, test)
    assert tail.tolist() == [1.0] and raw_tail.tolist() == [3.0]
    assert head.tolist() == [2.0] and raw_head.tolist() == [3.0]
    m = ev.evaluate(model, test)
    assert m['tail']['mrr'] == pytest.approx(1.0)
    assert m['head']['mrr'] == pytest.approx(0.5)
    assert m['both']['mrr'] == pytest.approx(0.75)
    assert m['both']['mr'] == pytest.approx(1.5)
    assert m['raw']['both']['mr'] == pytest.approx(3.0)
    assert m['raw']['tail']['hits@1'] == 0.0 and m['tail']['hits@1'] == 1.0


@pytest.mark.parametrize('ties,expected', [('optimistic', 1.0), ('pessimistic', 3.0),
                                           ('realistic', 2.0)])
def test_evaluator_tie_rules(ties, expected):
    model = one_relation_model(4, tail_rows={0: [0.5, 0.5, 0.5, 0.1]},
                               head_rows={1: [0.5, 0.5, 0.5, 0.5]})
    ev = LinkPredictionEvaluator(4, torch.tensor([[0, 0, 1]]), ties=ties)
    head, tail, _, _ = ev.ranks(model, torch.tensor([[0, 0, 1]]))
    assert tail.tolist() == [expected]
    # head query: target tied with all three others
    assert head.tolist() == [{'optimistic': 1.0, 'pessimistic': 4.0, 'realistic': 2.5}[ties]]
    assert ev.evaluate(model, torch.tensor([[0, 0, 1]]))['ties'] == ties


@pytest.mark.parametrize('ties', ['optimistic', 'pessimistic', 'realistic'])
@pytest.mark.parametrize('batch_size', [1, 4, 256])
def test_grouped_ranks_match_per_query_reference(ties, batch_size):
    known, test, model = random_problem(seed=1)
    ev = LinkPredictionEvaluator(12, known, ties=ties, batch_size=batch_size)
    head, tail, raw_head, raw_tail = ev.ranks(model, test)
    ref_head, ref_tail = reference_ranks(known, test, model, ties)
    assert torch.equal(head, ref_head.float()) and torch.equal(tail, ref_tail.float())
    raw_ref_head, raw_ref_tail = reference_ranks(known, test, model, ties, filtered=False)
    assert torch.equal(raw_head, raw_ref_head.float())
    assert torch.equal(raw_tail, raw_ref_tail.float())
    assert all(c['size'] <= batch_size for c in model.calls)
    # one tail and one head call per chunk; chunks never span relations
    num_chunks = sum(-(-int(n) // batch_size) for n in torch.bincount(test[:, 1]) if n > 0)
    assert len(model.calls) == 2 * num_chunks


@pytest.mark.parametrize('ties', ['optimistic', 'pessimistic', 'realistic'])
def test_raw_minus_filtered_is_the_removed_candidates(ties):
    # raw - filtered = removed better candidates (+ removed tied ones, in full
    # for pessimistic ties and by half for realistic ties)
    known, test, model = random_problem(seed=2)
    _, tail, _, raw_tail = LinkPredictionEvaluator(12, known, ties=ties).ranks(model, test)
    tie_weight = {'optimistic': 0.0, 'pessimistic': 1.0, 'realistic': 0.5}[ties]
    known_set = {tuple(x) for x in known.tolist()}
    for i, (h, r, t) in enumerate(test.tolist()):
        s = model.tails[r, h]
        removed = [c for c in range(12) if c != t and (h, r, c) in known_set]
        better = sum(1 for c in removed if s[c] > s[t])
        tied = sum(1 for c in removed if s[c] == s[t])
        assert float(raw_tail[i] - tail[i]) == better + tie_weight * tied
    assert (raw_tail > tail).any()


def test_duplicated_rows_count_twice():
    model = one_relation_model(4, tail_rows={0: [0.9, 0.1, 0.5, 0.8], 1: [0.0, 0.1, 0.9, 0.2]},
                               head_rows={1: [0.9, 0.1, 0.5, 0.8], 2: [0.1, 0.5, 0.9, 0.2]})
    known = torch.tensor([[0, 0, 1], [1, 0, 2]])
    ev = LinkPredictionEvaluator(4, known, ties='optimistic')
    once = torch.tensor([[0, 0, 1], [1, 0, 2]])
    twice = torch.tensor([[0, 0, 1], [0, 0, 1], [1, 0, 2]])
    head, tail, _, _ = ev.ranks(model, twice)
    assert tail.tolist() == [4.0, 4.0, 1.0] and head.tolist() == [1.0, 1.0, 2.0]
    m_once, m_twice = ev.evaluate(model, once), ev.evaluate(model, twice)
    assert m_twice['num_triples'] == 3
    assert m_once['tail']['mr'] == pytest.approx((4 + 1) / 2)
    assert m_twice['tail']['mr'] == pytest.approx((4 + 4 + 1) / 3)
    assert m_twice['head']['mrr'] == pytest.approx((1 + 1 + 1 / 2) / 3)


def test_model_without_parameters_and_wrong_score_shape():
    class Plain:  # duck-typed: no nn.Module, no parameters
        def score_tails(self, head_index, rel_type):
            return torch.arange(5.0).repeat(head_index.numel(), 1)

        def score_heads(self, rel_type, tail_index):
            return -torch.arange(5.0).repeat(tail_index.numel(), 1)

    ev = LinkPredictionEvaluator(5, torch.tensor([[1, 0, 2]]), ties='optimistic')
    head, tail, _, _ = ev.ranks(Plain(), torch.tensor([[1, 0, 2]]))
    assert tail.tolist() == [3.0] and head.tolist() == [2.0]

    class Short(Plain):
        def score_tails(self, head_index, rel_type):
            return torch.zeros(head_index.numel(), 4)

    with pytest.raises(ValueError, match='score_tails'):
        ev.evaluate(Short(), torch.tensor([[1, 0, 2]]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    known, test, model = random_problem(seed=9)
    ev = LinkPredictionEvaluator(12, known)
    cpu = ev.ranks(model, test)
    gpu = ev.ranks(model.cuda(), test)
    for a, b in zip(cpu, gpu):
        assert torch.equal(a, b)


def test_repeated_queries_across_relations_are_scored_once_each():
    # (entity, relation) pairs whose naive keys could collide: (0, 5) and (1, 0) etc.
    h, r = torch.tensor([0, 1, 0, 1, 2]), torch.tensor([5, 0, 5, 3, 0])
    count, first, inverse = distinct_queries(h, r)
    assert count == 4
    assert sorted(zip(h[first].tolist(), r[first].tolist())) == [(0, 5), (1, 0), (1, 3), (2, 0)]
    assert torch.equal(h[first][inverse], h) and torch.equal(r[first][inverse], r)
