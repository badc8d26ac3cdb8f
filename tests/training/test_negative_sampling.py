"""``training.corrupt_side``: the corrupted side drawn per positive row (the
default, unchanged draws) or per negative (the authors' Base.cpp), issue 25."""
import math

import pytest
import torch

from native_pyg.data import relation_tph_hpt, split_triples
from native_pyg.data.relations import triple_keys
from native_pyg.datasets import SyntheticMMKG
from native_pyg.pipeline import build_model
from native_pyg.training import RunConfig, Trainer
from native_pyg.config.legacy import with_legacy_defaults
from native_pyg.training.negative_sampling import (CORRUPT_SIDES, BernoulliNegativeSampler,
                                                   SharedNegativeSampler, build_negative_sampler)
from tests.conftest import gnn_run_config, small_run


@pytest.fixture(scope='module')
def small():
    return SyntheticMMKG(seed=1, num_entities=300, num_relations=4)[0]


def dense_triples():
    """200 of the 300 triples of 10 entities and 3 relations: most random
    corruptions are known triples."""
    h, r, t = torch.meshgrid(torch.arange(10), torch.arange(3), torch.arange(10), indexing='ij')
    every = torch.stack([h.flatten(), r.flatten(), t.flatten()], 1)
    return every[(every[:, 0] + 2 * every[:, 1] + every[:, 2]) % 3 != 0]


def corrupted(pos, neg, corrupt_head):
    """``[B * K, 3]`` negative triples, each negative on its own side."""
    side = corrupt_head if corrupt_head.dim() == 2 else corrupt_head.view(-1, 1)
    h = torch.where(side, neg, pos[:, :1])
    t = torch.where(side, pos[:, 2:], neg)
    return torch.stack([h.flatten(), pos[:, 1].repeat_interleave(neg.size(1)), t.flatten()], 1)


# --- the default: the draws of the sampler before the option existed -----------
# Computed with the sampler of the commit before training.corrupt_side (no such
# argument), on dense_triples()[::9][:8], two consecutive sample() calls each.
BEFORE = {
    'plain': ([[2, 5, 2, 2, 5], [8, 2, 5, 8, 5], [8, 2, 8, 2, 8], [9, 6, 3, 9, 3],
               [4, 1, 4, 7, 1], [4, 4, 4, 1, 4], [0, 6, 9, 3, 6], [7, 1, 4, 7, 1]],
              [1, 1, 0, 1, 0, 0, 0, 1],
              [[5, 5, 8, 2, 8], [4, 1, 1, 4, 7], [7, 1, 1, 4, 1], [3, 3, 9, 0, 6],
               [7, 7, 1, 1, 7], [7, 7, 7, 1, 4], [1, 4, 4, 4, 1], [7, 7, 7, 4, 4]],
              [1, 0, 1, 0, 0, 0, 1, 1]),
    # max_rounds=0: every rejected candidate comes from the explicit complement
    'fallback': ([[8, 8, 2, 8, 5], [5, 5, 5, 8, 5], [8, 8, 8, 2, 8], [9, 3, 3, 3, 0],
                  [1, 1, 1, 1, 1], [4, 4, 1, 7, 4], [0, 6, 9, 0, 3], [7, 4, 4, 7, 1]],
                 [1, 1, 0, 1, 0, 0, 0, 1],
                 [[8, 5, 2, 5, 2], [1, 1, 1, 7, 7], [2, 8, 8, 5, 5], [3, 3, 9, 3, 6],
                  [9, 6, 6, 3, 6], [4, 1, 7, 7, 7], [9, 9, 9, 0, 0], [4, 7, 1, 1, 4]],
                 [1, 0, 0, 0, 1, 0, 0, 1]),
    # shared_chunk=3, in_batch=2
    'shared': ([[8, 2, 2, 8, 8, 2], [5, 2, 2, 5, 2, 2], [5, 2, 2, 8, 5, 5],
                [3, 0, 3, 3, 0, 6], [4, 4, 4, 1, 1, 1], [7, 4, 4, 1, 1, 4],
                [0, 9, 9, 0, 9, 9], [1, 4, 1, 1, 7, 4]],
               [1, 1, 0, 1, 0, 0, 0, 1],
               [[3, 0, 6, 3, 6, 6], [8, 8, 5, 5, 5, 2], [4, 1, 7, 7, 1, 1],
                [0, 3, 6, 6, 3, 9], [7, 1, 1, 4, 1, 1], [7, 7, 1, 1, 1, 1],
                [4, 4, 4, 7, 7, 7], [4, 1, 7, 4, 7, 7]],
               [0, 1, 1, 1, 0, 0, 1, 1]),
}


def _samplers(**side):
    train = dense_triples()
    return train, {
        'plain': BernoulliNegativeSampler(train, 10, 3, 5, seed=11, **side),
        'fallback': BernoulliNegativeSampler(train, 10, 3, 5, seed=11, max_rounds=0, **side),
        'shared': build_negative_sampler(train, 10, 3, 4, seed=11, shared_chunk=3, in_batch=2,
                                         **side),
    }


@pytest.mark.parametrize('side', [{}, {'corrupt_side': 'row'}], ids=['absent', 'row'])
@pytest.mark.parametrize('name', sorted(BEFORE))
def test_row_sides_give_the_draws_of_before(name, side):
    train, samplers = _samplers(**side)
    sampler, pos = samplers[name], train[::9][:8]
    assert sampler.corrupt_side == 'row'
    neg1, head1, neg2, head2 = BEFORE[name]
    for neg, head in ((neg1, head1), (neg2, head2)):
        got_neg, got_head = sampler.sample(pos)
        assert got_head.shape == (8,)
        assert got_neg.tolist() == neg and got_head.int().tolist() == head


# --- per-negative sides ------------------------------------------------------------
def test_per_negative_sides_vary_within_a_row_and_follow_bernoulli(small):
    train = split_triples(small, 'train')
    sampler = BernoulliNegativeSampler(train, 300, 4, num_negatives=16, seed=0,
                                       corrupt_side='negative')
    tph, hpt = relation_tph_hpt(train, 4)
    reps = train.repeat(4, 1)
    neg, corrupt_head = sampler.sample(reps)
    assert neg.shape == corrupt_head.shape == (reps.size(0), 16)
    assert corrupt_head.dtype == torch.bool
    mixed = corrupt_head.any(1) & ~corrupt_head.all(1)
    assert mixed.float().mean() > 0.5  # most rows corrupt both sides
    for r in range(4):
        sel = reps[:, 1] == r
        expected = float(tph[r] / (tph[r] + hpt[r]))
        draws = corrupt_head[sel]
        sd = math.sqrt(expected * (1 - expected) / draws.numel())
        assert abs(draws.float().mean().item() - expected) < 5 * sd + 1e-6
    uniform = BernoulliNegativeSampler(train, 300, 4, num_negatives=16, bernoulli=False, seed=0,
                                       corrupt_side='negative')
    assert abs(uniform.sample(reps)[1].float().mean().item() - 0.5) < 0.01
    # seeded
    a = BernoulliNegativeSampler(train, 300, 4, seed=5, corrupt_side='negative')
    b = BernoulliNegativeSampler(train, 300, 4, seed=5, corrupt_side='negative')
    (na, ha), (nb, hb) = a.sample(train[:50]), b.sample(train[:50])
    assert torch.equal(na, nb) and torch.equal(ha, hb)


@pytest.mark.parametrize('max_rounds', [50, 0], ids=['redrawn', 'complement'])
@pytest.mark.parametrize('layout', ['plain', 'shared'])
def test_filtered_per_negative_negatives_are_never_known_for_their_own_side(layout, max_rounds):
    train = dense_triples()
    kwargs = dict(seed=3, max_rounds=max_rounds, corrupt_side='negative')
    sampler = (BernoulliNegativeSampler(train, 10, 3, num_negatives=32, **kwargs)
               if layout == 'plain' else
               SharedNegativeSampler(train, 10, 3, num_negatives=24, chunk_size=16, in_batch=8,
                                     **kwargs))
    known = triple_keys(train, 10, 3)
    pos = train.repeat(2, 1)
    for _ in range(3):
        neg, corrupt_head = sampler.sample(pos)
        assert neg.shape == corrupt_head.shape == (pos.size(0), 32)
        keys = triple_keys(corrupted(pos, neg, corrupt_head), 10, 3)
        assert not bool(torch.isin(keys, known).any())
        # the other side would often have been a known triple: the sides matter
        flipped = triple_keys(corrupted(pos, neg, ~corrupt_head), 10, 3)
        assert bool(torch.isin(flipped, known).any())


def test_the_complement_follows_each_negatives_side():
    # (0, 0, t) for t = 1..5 over 6 entities: replacing the tail of (0, 0, 1)
    # leaves only entity 0, replacing its head anything but 0
    train = torch.tensor([[0, 0, t] for t in range(1, 6)])
    sampler = BernoulliNegativeSampler(train, 6, 1, num_negatives=64, bernoulli=False,
                                       seed=0, max_rounds=0, corrupt_side='negative')
    neg, corrupt_head = sampler.sample(train[:1].repeat(4, 1))
    assert corrupt_head.any() and not corrupt_head.all()
    assert bool((neg[~corrupt_head] == 0).all())
    assert bool((neg[corrupt_head] != 0).all())


def test_per_negative_shared_and_in_batch_layout(small):
    train = split_triples(small, 'train')
    sampler = SharedNegativeSampler(train, 300, 4, num_negatives=6, chunk_size=4, in_batch=3,
                                    filtered=False, seed=3, corrupt_side='negative')
    pos = train[:10]
    neg, corrupt_head = sampler.sample(pos)
    assert neg.shape == corrupt_head.shape == (10, 9)
    for start in range(0, 10, 4):  # chunks share the entities, not the sides
        chunk = neg[start:start + 4, :6]
        assert bool((chunk == chunk[0]).all())
    assert not bool((corrupt_head[:, :6] == corrupt_head[0, :6]).all())
    for b in range(10):
        for s in range(1, 4):
            j, k = (b + s) % 10, 5 + s
            assert int(neg[b, k]) == int(pos[j, 0 if corrupt_head[b, k] else 2])


def test_build_negative_sampler_passes_the_side_on():
    train = dense_triples()
    assert build_negative_sampler(train, 10, 3, 4).corrupt_side == 'row'
    for shared, in_batch, cls in ((0, 0, BernoulliNegativeSampler),
                                  (3, 0, SharedNegativeSampler), (0, 2, SharedNegativeSampler)):
        sampler = build_negative_sampler(train, 10, 3, 4, shared_chunk=shared,
                                         in_batch=in_batch, corrupt_side='negative')
        assert type(sampler) is cls and sampler.corrupt_side == 'negative'
        assert "corrupt_side='negative'" in repr(sampler)
        assert sampler.sample(train[:8])[1].shape == (8, 4 + in_batch)


def test_the_option_is_checked():
    assert CORRUPT_SIDES == ('row', 'negative')
    assert RunConfig().training.corrupt_side == 'row'
    assert RunConfig().override(['training.corrupt_side=negative']).training.corrupt_side == \
        'negative'
    with pytest.raises(ValueError, match=r"^--set: training.corrupt_side: must be one of row, "
                                         r"negative, got 'head'$"):
        RunConfig().override(['training.corrupt_side=head'])
    with pytest.raises(ValueError, match='training.corrupt_side must be one of row, negative'):
        BernoulliNegativeSampler(dense_triples(), 10, 3, corrupt_side='tail')
    # checkpoints written before the key were trained with one side per row
    saved = RunConfig().to_dict()
    del saved['training']['corrupt_side']
    assert with_legacy_defaults(saved)['training']['corrupt_side'] == 'row'


# --- training with per-negative sides -----------------------------------------------
@pytest.mark.parametrize('training', [
    {}, {'adversarial': False, 'regul_rate': 0.1, 'loss': 'margin'},
    {'shared_negatives': 64, 'in_batch_negatives': 4},
], ids=['comat', 'margin_l2', 'shared_in_batch'])
def test_a_fit_with_per_negative_sides_has_a_finite_loss(small, training):
    run = small_run(epochs=1, corrupt_side='negative', **training)
    trainer = Trainer(build_model(small, run), small, run)
    assert trainer.sampler.corrupt_side == 'negative'
    batch = next(iter(trainer.steps))
    width = 8 + training.get('in_batch_negatives', 0)
    assert batch.neg.shape == batch.corrupt_head.shape == (256, width)
    hist = trainer.fit()
    assert len(hist) == 1 and math.isfinite(hist[0]['loss'])


def test_a_gnn_fit_with_per_negative_sides_has_a_finite_loss(gnn_small):
    run = gnn_run_config('rgcn', num_neighbors=[5], epochs=1, corrupt_side='negative')
    trainer = Trainer(build_model(gnn_small, run), gnn_small, run)
    batch = next(iter(trainer.steps))
    assert batch.corrupt_head.shape == batch.neg.shape == (128, 8) and batch.has_subgraph
    hist = trainer.fit()
    assert math.isfinite(hist[0]['loss'])
