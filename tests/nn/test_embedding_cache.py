"""The one embedding-cache protocol: evaluation's CandidateCache and a
step's StepEmbeddings answer the same questions, and the model asks them
without telling them apart."""
import torch

from native_pyg.nn import CandidateCache, EmbeddingCache, NativE, StepEmbeddings
from native_pyg.nn.embedding_cache import cached_value, entity_rows

N, R = 8, 2


def test_values_are_kept_per_version_with_or_without_gradient():
    x = torch.ones(2, requires_grad=True)
    for cache, grad in ((CandidateCache(0), False), (StepEmbeddings(0), True)):
        assert isinstance(cache, EmbeddingCache)
        calls = []
        value = cache.get('k', 0, lambda: calls.append(1) or x * 2)
        assert cache.get('k', 0, lambda: calls.append(1) or x * 3) is value
        assert value.requires_grad == grad and len(calls) == 1
        cache.get('k', 1, lambda: calls.append(1) or x * 2)  # new inputs' version: again
        assert len(calls) == 2
        assert cache.get_last('c', 'a', 1, lambda: 1) == cache.get_last('c', 'a', 1, lambda: 2) == 1
        assert cache.get_last('c', 'b', 1, lambda: 3) == 3
        cache.clear()
        assert cache.get('k', 1, lambda: 5) == 5


def test_rows_are_gathered_by_a_steps_cache_only():
    ids = torch.tensor([1, 3, 4])
    rows = (torch.arange(3.0).view(3, 1, 1).requires_grad_(), torch.ones(3, 1, dtype=torch.bool))
    calls = []

    def compute(index):
        calls.append(index.tolist())
        return rows[0][:index.numel()] * 1, rows[1][:index.numel()]

    step, evaluation = StepEmbeddings(0), CandidateCache(0)
    entity_rows(step, ids, compute)
    emb, _ = entity_rows(step, torch.tensor([3, 4]), compute)  # gathered from the first call
    assert calls == [[1, 3, 4]] and emb.view(-1).tolist() == [1.0, 2.0]
    entity_rows(evaluation, torch.tensor([3, 4]), compute)
    entity_rows(None, torch.tensor([3, 4]), compute)
    assert calls == [[1, 3, 4], [3, 4], [3, 4]]
    assert cached_value(None, 'k', 0, lambda: 7) == 7
    assert CandidateCache.serves_one_vs_all and not StepEmbeddings.serves_one_vs_all


def test_one_vs_all_reuses_evaluations_cache_and_not_a_steps():
    g = torch.Generator().manual_seed(0)
    model = NativE(N, R, 4, features={'image': torch.randn(N, 3, generator=g)},
                   edge_index=torch.tensor([[0, 1, 2], [3, 4, 5]]),
                   edge_type=torch.tensor([0, 1, 0]))
    calls = []
    model.fusion.register_forward_hook(lambda *args: calls.append(1))
    h, r = torch.tensor([0, 1]), torch.tensor([1, 1])
    with torch.no_grad():
        plain = model.score_tails(h, r)
        with model.step_embeddings():
            assert not model.entities_cached
            torch.testing.assert_close(model.score_tails(h, r), plain)
            torch.testing.assert_close(model.score_tails(h, r), plain)
        fused_without = len(calls)
        with model.cached_entities():
            assert model.entities_cached
            torch.testing.assert_close(model.score_tails(h, r), plain)
            first = len(calls)
            torch.testing.assert_close(model.score_tails(h, r), plain)
    assert fused_without == 6  # query and candidates, three calls: nothing reused in a step
    assert len(calls) - first == 1  # the candidates of the last relation were reused
