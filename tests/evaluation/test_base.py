import dataclasses
import pytest
import torch

from native_pyg.evaluation import LinkPredictionEvaluator, RankingEvaluator, evaluate_sample
from native_pyg.nn import NativE
from tests.evaluation.tables import TableModel, one_relation_model, random_problem, reference_ranks


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


@pytest.mark.parametrize('protocol', ['full', 'streamed', 'sampled'])
def test_every_protocol_ranks_under_the_compiled_kernels_when_asked(protocol, monkeypatch):
    """``evaluate --compile`` reaches every protocol (it was once dropped for
    streamed and sampled): the ranking runs inside ``Runtime(compile=True)``."""
    from native_pyg.datasets import SyntheticMMKG
    from native_pyg.kernels.runtime import Runtime
    from native_pyg.evaluation.protocols import evaluator_for
    from native_pyg.data import split_triples
    data = SyntheticMMKG(seed=0, num_entities=60, num_relations=3)[0]
    net = NativE.from_data(data, 8, margin=6.0)
    seen, enter = [], Runtime.__enter__
    monkeypatch.setattr(Runtime, '__enter__', lambda self: seen.append(self.compile) or enter(
        dataclasses.replace(self, compile=False)))
    for compile in (True, False):
        seen.clear()
        ev = evaluator_for(data, protocol, num_candidates=10, compile=compile)
        ev.evaluate(net, split_triples(data, 'test')[:4])
        assert seen and set(seen) == {compile}


class FixedRanks(RankingEvaluator):
    """A protocol that overrides only how ranks are computed: every head
    query ranks 1, every tail query 2, raw 3 and 4; it records the state
    the model is ranked in."""
    protocol = 'fixed'

    def _rank_triples(self, model, triples):
        self.state = {'training': model.training, 'grad': torch.is_grad_enabled(),
                      'rows': triples.size(0)}
        ranks = torch.arange(1.0, 5.0).view(4, 1)
        return ranks.expand(4, triples.size(0)).to(triples.device)


def test_a_protocol_overriding_only_its_ranks_gets_checks_metrics_and_subsets():
    known, test, model = random_problem(seed=10)
    model.train()
    ev = FixedRanks(12, known)
    m = ev.evaluate(model, test)
    assert ev.state == {'training': False, 'grad': False, 'rows': test.size(0)}
    assert model.training
    assert m['head']['mrr'] == 1.0 and m['tail']['mrr'] == 0.5
    assert m['raw']['head']['mr'] == 3.0 and m['raw']['tail']['mr'] == 4.0
    assert m['protocol'] == 'fixed' and m['num_triples'] == test.size(0)
    subset = ev.evaluate(model, test, sample=5, seed=1)
    assert ev.state['rows'] == 5 and subset['sampled_queries'] == 5
    assert subset['ci95']['mrr'] == 0.0  # every rank alike: no spread
    assert ev.describe() == 'fixed, realistic ties'
    assert repr(ev) == (f"FixedRanks(num_entities=12, num_known={ev.filter.num_known}, "
                        f"ties='realistic', batch_size=256)")
    del ev.state
    with pytest.raises(ValueError, match='entity ids'):
        ev.evaluate(model, torch.tensor([[0, 0, 12]]))
    assert not hasattr(ev, 'state')  # checked before ranking
    with pytest.raises(TypeError, match='abstract'):
        RankingEvaluator(12, known)


def test_the_full_protocol_evaluates_a_subset_and_names_no_protocol():
    known, test, model = random_problem(seed=11)
    ev = LinkPredictionEvaluator(12, known)
    whole = ev.evaluate(model, test)
    assert 'protocol' not in whole  # as its results always were
    m = ev.evaluate(model, test, sample=10, seed=2)
    assert m == evaluate_sample(ev, model, test, 10, 2)
    assert m['num_triples'] == 10 and 'protocol' not in m


def test_a_protocol_declares_the_model_api_it_uses():
    class Needy(FixedRanks):
        model_api = ('score_tails', 'embed_entities')

    known, test, model = random_problem(seed=12)
    with pytest.raises(TypeError, match="TableModel lacks the NativE API "
                                        r"\['score_tails', 'embed_entities'\]"):
        Needy(12, known).ranks(model, test)
    FixedRanks(12, known).ranks(model, test)  # no API declared: any model
