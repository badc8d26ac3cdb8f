"""Shared and in-batch negatives: the sampler's layout, the loss against a
hand computation, and the entities a step touches."""
import pytest
import torch
import torch.nn.functional as F

from native_pyg.data import split_triples
from native_pyg.loader.neighbor_loader import KGBatch
from native_pyg.data.relations import triple_keys
from native_pyg.datasets import SyntheticMMKG
from native_pyg.pipeline import build_model
from native_pyg.training import RunConfig, Trainer
from native_pyg.training.negative_sampling import (BernoulliNegativeSampler,
                                                   SharedNegativeSampler, build_negative_sampler)


@pytest.fixture(scope='module')
def small():
    return SyntheticMMKG(seed=1, num_entities=300, num_relations=4)[0]


def test_chunks_share_their_negatives_and_in_batch_ones_follow_the_batch(small):
    train = split_triples(small, 'train')
    sampler = SharedNegativeSampler(train, 300, 4, num_negatives=6, chunk_size=4, in_batch=3,
                                    filtered=False, seed=3)
    pos = train[:10]
    neg, corrupt_head = sampler.sample(pos)
    assert neg.shape == (10, 9)
    shared = neg[:, :6]
    for start in range(0, 10, 4):  # chunks of 4, the last one of 2
        chunk = shared[start:start + 4]
        assert bool((chunk == chunk[0]).all())
    assert not torch.equal(shared[0], shared[4])  # another chunk, other draws
    for b in range(10):
        for s in range(1, 4):
            j = (b + s) % 10
            side = 0 if corrupt_head[b] else 2
            assert int(neg[b, 5 + s]) == int(pos[j, side])


def test_filtered_shared_negatives_are_never_known(small):
    train = split_triples(small, 'train')
    sampler = SharedNegativeSampler(train, 300, 4, num_negatives=16, chunk_size=64, in_batch=8,
                                    seed=0)
    pos = train[:256]
    neg, corrupt_head = sampler.sample(pos)
    h = torch.where(corrupt_head.view(-1, 1), neg, pos[:, :1])
    t = torch.where(corrupt_head.view(-1, 1), pos[:, 2:], neg)
    keys = triple_keys(torch.stack([h.flatten(), pos[:, 1].repeat_interleave(neg.size(1)),
                                    t.flatten()], 1), 300, 4)
    known = triple_keys(train, 300, 4)
    assert not bool(torch.isin(keys, known).any())


def test_a_step_touches_batch_plus_shared_entities(small):
    train = split_triples(small, 'train')
    n = 100_000  # the graph's ids are a corner of a large entity set
    per_positive = BernoulliNegativeSampler(train, n, 4, num_negatives=64, filtered=False)
    shared = build_negative_sampler(train, n, 4, 64, filtered=False, shared_chunk=32)
    pos = train[:64]
    many = torch.unique(torch.cat([pos[:, 0], pos[:, 2], per_positive.sample(pos)[0].flatten()]))
    few = torch.unique(torch.cat([pos[:, 0], pos[:, 2], shared.sample(pos)[0].flatten()]))
    assert few.numel() <= 2 * 64 + 2 * 64 < 2000 < many.numel()
    assert type(build_negative_sampler(train, 300, 4, 8)) is BernoulliNegativeSampler


def test_shared_negative_loss_equals_a_hand_computation(small):
    run = RunConfig().override(['model.hidden_channels=8', 'model.margin=6.0',
                                'training.num_negatives=5', 'training.shared_negatives=3',
                                'training.in_batch_negatives=2', 'training.progress=false',
                                'training.eval_every=0', 'training.adversarial=false'])
    model = build_model(small, run)
    trainer = Trainer(model, small, run)
    pos = split_triples(small, 'train')[:7]
    neg, corrupt_head = trainer.sampler.sample(pos)
    assert neg.shape == (7, 7)
    loss = trainer._kgc_loss(KGBatch(pos, neg, corrupt_head))
    # by hand: score every triple on its own, then the self-adversarial loss
    h, r, t = pos.unbind(1)
    pos_s = model(h, r, t)
    heads = torch.where(corrupt_head.view(-1, 1), neg, h.view(-1, 1))
    tails = torch.where(corrupt_head.view(-1, 1), t.view(-1, 1), neg)
    neg_s = model(heads.flatten(), r.repeat_interleave(7), tails.flatten()).view(7, 7)
    w = torch.softmax(run.training.adv_temperature * neg_s, dim=1)
    expected = (-F.logsigmoid(pos_s).mean() - (w * F.logsigmoid(-neg_s)).sum(1).mean()) / 2
    assert torch.allclose(loss, expected, atol=1e-6)


def test_options_are_checked():
    with pytest.raises(ValueError, match='shared_negatives'):
        RunConfig().override(['training.shared_negatives=-1'])
    with pytest.raises(ValueError, match='table_optimizer: must be one of'):
        RunConfig().override(['training.table_optimizer=sgd'])
    from native_pyg.builders import user_feature_store
    run = RunConfig().override(['data.feature_store=cloud'])  # a path, checked when used
    with pytest.raises(ValueError, match="cloud: no such feature store"):
        user_feature_store(run, None)
    train = torch.tensor([[0, 0, 1], [1, 0, 2]])
    with pytest.raises(ValueError, match='in_batch'):
        SharedNegativeSampler(train, 3, 1, 2, in_batch=4).sample(train)
