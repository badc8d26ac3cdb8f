"""Triple helpers of native_pyg.data.relations."""
import torch


def test_distinct_triples_equal_unique_rows_by_one_integer_key(monkeypatch):
    from native_pyg.data.relations import distinct_triples
    g = torch.Generator().manual_seed(0)
    triples = torch.stack([torch.randint(9, (300,), generator=g), torch.randint(4, (300,), generator=g),
                           torch.randint(9, (300,), generator=g)], 1)
    expected = torch.unique(triples, dim=0)
    assert expected.size(0) < 300  # duplicates removed
    assert torch.equal(distinct_triples(triples, 9), expected)  # same rows, same order
    assert distinct_triples(triples[:0], 9).shape == (0, 3)
    # where N * N * R passes int64, row-wise
    calls = []
    real = torch.unique
    monkeypatch.setattr(torch, 'unique', lambda x, **k: calls.append(k) or real(x, **k))
    assert torch.equal(distinct_triples(triples, 2 ** 31), expected)
    assert calls == [{'dim': 0}]
