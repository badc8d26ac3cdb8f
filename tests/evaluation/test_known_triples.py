import pytest
import torch

from native_pyg.evaluation import KnownTripleFilter


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
