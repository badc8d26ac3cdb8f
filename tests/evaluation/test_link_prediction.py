import json

import pytest
import torch

from native_pyg.evaluation import (KnownTripleFilter, LinkPredictionEvaluator,
                                   compare_metrics, format_metrics,
                                   rank_from_scores, ranking_metrics)


class TableModel(torch.nn.Module):
    """Fake model whose scores are fixed tables: ``tails[r, h]`` is the score
    row of the tail query ``(h, r, ?)``, ``heads[r, t]`` that of ``(?, r, t)``.
    Records every call and refuses calls that mix relations."""
    def __init__(self, tails: torch.Tensor, heads: torch.Tensor):
        super().__init__()
        self.register_buffer('tails', tails.float())
        self.register_buffer('heads', heads.float())
        self.calls = []

    def _record(self, rel_type):
        assert torch.unique(rel_type).numel() == 1, 'a call mixed relations'
        self.calls.append({'size': rel_type.numel(), 'training': self.training,
                           'grad': torch.is_grad_enabled()})

    def score_tails(self, head_index, rel_type):
        self._record(rel_type)
        return self.tails[rel_type, head_index]

    def score_heads(self, rel_type, tail_index):
        self._record(rel_type)
        return self.heads[rel_type, tail_index]


def one_relation_model(num_entities, tail_rows=None, head_rows=None):
    """A one-relation TableModel with the given score rows (dict entity -> row)."""
    tails = torch.zeros(1, num_entities, num_entities)
    heads = torch.zeros(1, num_entities, num_entities)
    for h, row in (tail_rows or {}).items():
        tails[0, h] = torch.tensor(row)
    for t, row in (head_rows or {}).items():
        heads[0, t] = torch.tensor(row)
    return TableModel(tails, heads)


def reference_rank(scores, target, removed, ties):
    """Per-query rank, written out with Python loops over candidates."""
    s = scores.tolist()
    better = sum(1 for j, v in enumerate(s) if j not in removed and j != target and v > s[target])
    tied = sum(1 for j, v in enumerate(s) if j not in removed and j != target and v == s[target])
    return {'optimistic': better + 1, 'pessimistic': better + tied + 1,
            'realistic': better + tied / 2 + 1}[ties]


def random_problem(seed, num_entities=12, num_relations=3, num_known=70, num_test=25):
    gen = torch.Generator().manual_seed(seed)
    known = torch.stack([torch.randint(num_entities, (num_known,), generator=gen),
                         torch.randint(num_relations, (num_known,), generator=gen),
                         torch.randint(num_entities, (num_known,), generator=gen)], dim=1)
    test = known[torch.randint(num_known, (num_test,), generator=gen)]
    # plus random triples, mostly unknown: their targets are not filtered either
    extra = torch.stack([torch.randint(num_entities, (5,), generator=gen),
                         torch.randint(num_relations, (5,), generator=gen),
                         torch.randint(num_entities, (5,), generator=gen)], dim=1)
    test = torch.cat([test, extra])
    # few distinct values, so that ties are frequent
    shape = (num_relations, num_entities, num_entities)
    tails = torch.randint(0, 4, shape, generator=gen).float()
    heads = torch.randint(0, 4, shape, generator=gen).float()
    return known, test, TableModel(tails, heads)


def reference_ranks(known, test, model, ties, filtered=True):
    """Head and tail ranks computed one query at a time."""
    known_set = {tuple(x) for x in known.tolist()}
    head_ranks, tail_ranks = [], []
    for h, r, t in test.tolist():
        n = model.tails.size(1)
        tail_removed = {c for c in range(n) if filtered and (h, r, c) in known_set}
        head_removed = {c for c in range(n) if filtered and (c, r, t) in known_set}
        tail_ranks.append(reference_rank(model.tails[r, h], t, tail_removed, ties))
        head_ranks.append(reference_rank(model.heads[r, t], h, head_removed, ties))
    return torch.tensor(head_ranks), torch.tensor(tail_ranks)


# --- rank_from_scores --------------------------------------------------------

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


# --- metrics -----------------------------------------------------------------

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


# --- filter index ---------------------------------------------------------------

def test_known_triple_filter_masks():
    known = torch.tensor([[0, 0, 1], [0, 0, 3], [0, 1, 2], [4, 0, 1], [0, 0, 1]])
    f = KnownTripleFilter(known, num_entities=5)
    assert f.num_known == 4  # the duplicate row is stored once
    mask = f.tail_mask(torch.tensor([0, 0, 2]), torch.tensor([0, 1, 0]))
    assert mask.tolist() == [[False, True, False, True, False],
                             [False, False, True, False, False],
                             [False] * 5]
    mask = f.head_mask(torch.tensor([0, 0]), torch.tensor([1, 3]))
    assert mask.tolist() == [[True, False, False, False, True],
                             [True, False, False, False, False]]
    with pytest.raises(ValueError):
        KnownTripleFilter(torch.tensor([[0, 0, 5]]), num_entities=5)


def test_known_triple_filter_pairs_equal_with_and_without_packed_keys():
    gen = torch.Generator().manual_seed(0)
    known = torch.stack([torch.randint(0, 40, (300,), generator=gen),
                         torch.randint(0, 3, (300,), generator=gen),
                         torch.randint(0, 40, (300,), generator=gen)], 1)
    packed = KnownTripleFilter(known, num_entities=40)
    # 3 relations x (2^31 entities)^2 passes int64: keys and answers kept apart
    apart = KnownTripleFilter(known, num_entities=2 ** 31)
    assert packed.packed and not apart.packed
    ents, rels = torch.arange(40).repeat(3), torch.arange(3).repeat_interleave(40)
    expected_tails = {(int(h), int(r), int(t)) for h, r, t in known}
    for f in (packed, apart):
        row, tail = f.tail_pairs(ents, rels)
        assert {(int(ents[i]), int(rels[i]), int(t)) for i, t in zip(row, tail)} == expected_tails
        row, head = f.head_pairs(rels, ents)
        assert {(int(h), int(rels[i]), int(ents[i])) for i, h in zip(row, head)} == expected_tails


# --- evaluator ---------------------------------------------------------------

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


@pytest.mark.parametrize('start_training', [True, False])
def test_training_mode_restored_and_no_grad(start_training):
    known, test, model = random_problem(seed=5)
    model.train(start_training)
    LinkPredictionEvaluator(12, known).evaluate(model, test)
    assert model.training is start_training
    assert model.calls and all(not c['training'] and not c['grad'] for c in model.calls)


def test_training_mode_restored_after_error():
    class Broken(TableModel):
        def score_heads(self, rel_type, tail_index):
            raise RuntimeError('boom')

    known, test, model = random_problem(seed=6)
    broken = Broken(model.tails, model.heads).train()
    with pytest.raises(RuntimeError, match='boom'):
        LinkPredictionEvaluator(12, known).evaluate(broken, test)
    assert broken.training


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


def test_rejects_bad_triples_and_settings():
    ev = LinkPredictionEvaluator(5, torch.tensor([[1, 0, 2]]))
    model = one_relation_model(5)
    with pytest.raises(ValueError):
        ev.evaluate(model, torch.tensor([[1, 0, 5]]))
    with pytest.raises(ValueError):
        ev.evaluate(model, torch.empty(0, 3, dtype=torch.long))
    with pytest.raises(ValueError):
        ev.evaluate(model, torch.tensor([1, 0, 2]))
    with pytest.raises(ValueError, match='tie rule'):
        LinkPredictionEvaluator(5, torch.tensor([[1, 0, 2]]), ties='mean')
    with pytest.raises(ValueError):
        LinkPredictionEvaluator(5, torch.tensor([[1, 0, 2]]), batch_size=0)


def test_result_is_json_serialisable_and_formatted():
    known, test, model = random_problem(seed=7)
    ev = LinkPredictionEvaluator(12, known, relation_category=['1-1', '1-N', 'N-N'],
                                 progress=True)
    m = ev.evaluate(model, test)
    assert json.loads(json.dumps(m, allow_nan=False)) == m
    table = format_metrics(m)
    for label in ('MRR', 'MR', 'H@1', 'H@3', 'H@10', 'head', 'tail', 'both', 'raw', 'N-N'):
        assert label in table
    assert f"{m['both']['mrr'] * 100:.2f}" in table
    other = LinkPredictionEvaluator(12, known, ties='optimistic').evaluate(model, test)
    side = compare_metrics({'model-a': m, 'model-b': m})
    assert 'model-a' in side and 'model-b' in side and 'realistic' in side
    assert 'MIXED' in compare_metrics({'a': m, 'b': other})


def test_from_data_uses_all_splits_and_categories():
    from native_pyg.data.relations import relation_categories
    from native_pyg.data.schema import build_mmkg

    known, test, model = random_problem(seed=8)
    train, valid = known[:40], known[40:55]
    data = build_mmkg(12, 3, train, valid, test)
    ev = LinkPredictionEvaluator.from_data(data, ties='optimistic', batch_size=3)
    every = torch.cat([train, valid, test])
    assert ev.filter.num_known == torch.unique(every, dim=0).size(0)
    assert ev.relation_category == relation_categories(every, 3)
    assert ev.ties == 'optimistic' and ev.batch_size == 3
    head, tail, _, _ = ev.ranks(model, test)
    ref_head, ref_tail = reference_ranks(every, test, model, 'optimistic')
    assert torch.equal(head, ref_head.float()) and torch.equal(tail, ref_tail.float())
    only_train = LinkPredictionEvaluator.from_data(data, split_known=('train',))
    assert only_train.filter.num_known == torch.unique(train, dim=0).size(0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    known, test, model = random_problem(seed=9)
    ev = LinkPredictionEvaluator(12, known)
    cpu = ev.ranks(model, test)
    gpu = ev.ranks(model.cuda(), test)
    for a, b in zip(cpu, gpu):
        assert torch.equal(a, b)


def test_repeated_queries_across_relations_are_scored_once_each():
    from native_pyg.evaluation.link_prediction import distinct_queries
    # (entity, relation) pairs whose naive keys could collide: (0, 5) and (1, 0) etc.
    h, r = torch.tensor([0, 1, 0, 1, 2]), torch.tensor([5, 0, 5, 3, 0])
    count, first, inverse = distinct_queries(h, r)
    assert count == 4
    assert sorted(zip(h[first].tolist(), r[first].tolist())) == [(0, 5), (1, 0), (1, 3), (2, 0)]
    assert torch.equal(h[first][inverse], h) and torch.equal(r[first][inverse], r)
