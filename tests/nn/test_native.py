import pytest
import torch

from native_pyg.data.schema import build_mmkg, split_triples
from native_pyg.nn import SCORERS, NativE
from native_pyg.training.losses import structural_l2

N, R, HIDDEN = 12, 3, 4
MODALITIES = ['image', 'text', 'numeric', 'audio', 'video']


def features(num_modalities, seed=0):
    """Random features with random missing rows; entity 0 has no feature at
    all and entity 1 has every one."""
    g = torch.Generator().manual_seed(seed)
    feats, masks = {}, {}
    for i, m in enumerate(MODALITIES[:num_modalities]):
        mask = torch.rand(N, generator=g) > 0.3
        mask[0], mask[1] = False, True
        feats[m] = torch.randn(N, 3 + 2 * i, generator=g) * mask.unsqueeze(1)
        masks[m] = mask
    return feats, masks


def model(num_modalities=2, **kwargs):
    feats, masks = features(num_modalities)
    return NativE(N, R, HIDDEN, feats, masks, **kwargs)


def triples(batch=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, N, (batch,), generator=g), torch.randint(0, R, (batch,), generator=g),
            torch.randint(0, N, (batch,), generator=g))


@pytest.mark.parametrize('num_modalities', range(6))
def test_shapes_and_dtypes(num_modalities):
    net = model(num_modalities)
    h, r, t = triples()
    m = 1 + num_modalities
    assert net.modality_names == ['structure', *MODALITIES[:num_modalities]]
    assert net.entity_dim == 2 * HIDDEN
    emb, mask = net.modality_embeddings(h)
    assert emb.shape == (7, m, 2 * HIDDEN) and mask.shape == (7, m) and mask.dtype == torch.bool
    assert net(h, r, t).shape == (7,) and net(h, r, t).dtype == torch.float32
    assert net.joint_embeddings(h, r).shape == (7, 2 * HIDDEN)
    assert net.modality_weights(h, r).shape == (7, m)
    assert net.score_tails(h, r).shape == net.score_heads(r, t).shape == (7, N)
    pos, neg = net.score_negatives(h, r, t, torch.randint(0, N, (7, 5)), torch.rand(7) > 0.5)
    assert pos.shape == (7,) and neg.shape == (7, 5)
    assert structural_l2(net, h, r, t).dim() == 0
    assert net.double()(h, r, t).dtype == torch.float64
    assert (num_modalities == 0) == (net.fusion is None and net.projections is None)
    assert repr(net).startswith('NativE(12, num_relations=3')


def test_edge_index_form_equals_triple_form():
    net = model(3)
    h, r, t = triples()
    edge_index = torch.stack([h, t])
    torch.testing.assert_close(net(edge_index, r), net(h, r, t))
    neg, flip = torch.randint(0, N, (7, 4)), torch.rand(7) > 0.5
    for a, b in zip(net.score_negatives(edge_index, r, neg, flip),
                    net.score_negatives(h, r, t, neg, flip)):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(structural_l2(net, edge_index, r), structural_l2(net, h, r, t))
    with pytest.raises(ValueError):
        net(h, r)


def test_masked_missing_modality_and_featureless_entity():
    net = model(4)
    _, masks = features(4)
    ent = torch.arange(N)
    for r in range(R):
        w = net.modality_weights(ent, torch.full((N,), r))
        present = torch.stack([torch.ones(N, dtype=torch.bool), *masks.values()], 1)
        assert (w[~present] == 0).all() and (w[present] > 0).all()
        # entity 0 has no feature: its joint embedding is its structural embedding
        torch.testing.assert_close(net.joint_embeddings(torch.tensor([0]), r)[0],
                                   net.entity_emb.weight[0], rtol=0, atol=0)


def test_temperature_changes_weights():
    net = model(3)
    with torch.no_grad():
        net.fusion.theta.weight[:, 0] = torch.tensor([-2.0, 2.0, 0.0])
    ent = torch.tensor([1, 1])  # entity 1 has every modality
    w = net.modality_weights(ent, torch.tensor([0, 1]))
    assert not torch.allclose(w[0], w[1])
    flat = model(3, relation_temperature=False)
    w = flat.modality_weights(ent, torch.tensor([0, 1]))
    torch.testing.assert_close(w[0], w[1])


@pytest.mark.parametrize('scorer', sorted(SCORERS))
def test_one_vs_all_equals_per_triple(scorer):
    net = model(2, scorer=scorer, margin=4.0)
    h, r, t = triples(batch=6)
    ent = torch.arange(N)
    tails, heads = net.score_tails(h, r, chunk_size=5), net.score_heads(r, t, chunk_size=5)
    expect_tails = net(h.repeat_interleave(N), r.repeat_interleave(N), ent.repeat(6)).view(6, N)
    expect_heads = net(ent.repeat(6), r.repeat_interleave(N), t.repeat_interleave(N)).view(6, N)
    torch.testing.assert_close(tails, expect_tails, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(heads, expect_heads, atol=1e-5, rtol=1e-5)
    with torch.no_grad(), net.cached_entities():
        for _ in range(2):  # second round reuses the cache
            torch.testing.assert_close(net.score_tails(h, r), expect_tails, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(net.score_heads(r, t), expect_heads, atol=1e-5, rtol=1e-5)
        # inside the context, changed entity inputs are seen (their version changes)
        net.inputs.set_features({m: net.feature(m)[0] * (2 if m == 'image' else 1)
                                 for m in net.feature_modalities},
                                {m: net.feature(m)[1] for m in net.feature_modalities})
        changed = net.score_tails(h, r)
        assert not torch.allclose(changed, expect_tails)
    # outside it nothing is kept: a changed parameter changes the scores
    with torch.no_grad():
        net.entity_emb.weight.add_(0.5)
    assert not torch.allclose(net.score_tails(h, r), changed)


def test_one_vs_all_fuses_each_relation_once():
    net = model(2)
    calls = []
    net.fusion.register_forward_hook(lambda mod, args, out: calls.append(out[0].size(0)))
    h = torch.tensor([0, 1, 2, 3, 4])
    net.score_tails(h, torch.tensor([2, 0, 2, 2, 0]))
    # one call for the queries, then one call of all N entities per distinct relation
    assert calls == [5, N, N]
    # a single relation id applies to every query
    torch.testing.assert_close(net.score_tails(h, torch.tensor(2)),
                               net.score_tails(h, torch.full((5,), 2)))


def test_scorer_instance_sets_the_margin():
    from native_pyg.nn import TransE
    net = NativE(N, R, HIDDEN, scorer=TransE(HIDDEN, margin=3.0, p_norm=2.0))
    assert net.margin == 3.0 and net.entity_dim == HIDDEN
    h, r, t = triples()
    expect = 3.0 - (torch.nn.functional.normalize(net.entity_emb(h))
                    + torch.nn.functional.normalize(net.rel_emb(r))
                    - torch.nn.functional.normalize(net.entity_emb(t))).norm(dim=-1)
    torch.testing.assert_close(net(h, r, t), expect)


def test_unique_entity_embedding_matches_naive_per_row_embedding():
    net = model(3)
    h, r, t = triples(batch=5)
    neg = torch.randint(0, N, (5, 6))
    flip = torch.tensor([True, False, True, False, False])
    pos, neg_scores = net.score_negatives(h, r, t, neg, flip)

    def naive_joint(entity, rel):  # embeds every row on its own
        emb, mask = net.modality_embeddings(entity)
        return net.fusion(emb, mask, rel)[0]

    rel = net.relation_embedding(r)
    torch.testing.assert_close(pos, net.scorer(naive_joint(h, r), rel, naive_joint(t, r)))
    heads = torch.where(flip.view(-1, 1), neg, h.view(-1, 1)).reshape(-1)
    tails = torch.where(flip.view(-1, 1), t.view(-1, 1), neg).reshape(-1)
    rr = r.repeat_interleave(6)
    expect = net.scorer(naive_joint(heads, rr), net.relation_embedding(rr), naive_joint(tails, rr))
    torch.testing.assert_close(neg_scores, expect.view(5, 6))

    # and the expensive projection sees each unique present entity exactly once
    seen = []
    net.projections.mlps['image'].register_forward_hook(lambda m, a, o: seen.append(a[0].size(0)))
    net.score_negatives(h, r, t, neg, flip)
    batch_entities = torch.unique(torch.cat([h, t, neg.view(-1)]))
    assert seen == [int(net.inputs.mask('image', batch_entities).sum())]


def test_gradients_reach_trainable_parameters_only():
    from native_pyg.nn import CoMATGenerator, critic_terms
    net = model(3)
    gen = CoMATGenerator(net.feature_modalities, net.entity_dim)
    h, r, t = torch.arange(N), torch.arange(N) % R, torch.arange(N).roll(1)
    pos, neg = net.score_negatives(h, r, t, torch.randint(0, N, (N, 4)), torch.rand(N) > 0.5)
    critic, gp = critic_terms(net, gen, h, r, t)
    (pos.sum() - neg.sum() + critic + gp + structural_l2(net, h, r, t)).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    buffers = dict(net.named_buffers())
    # everything entities bring in is frozen, owned by net.inputs, and not saved
    assert all(k.startswith('inputs.') for k in buffers)
    assert all(not b.requires_grad and b.grad is None for b in buffers.values())
    assert not any(k.startswith('inputs.') for k in net.state_dict())
    assert {m: net.inputs.rows(m).shape[1] for m in net.feature_modalities} \
        == net.inputs.in_channels


def test_structure_only_is_the_plain_score_function():
    for net in (NativE(N, R, HIDDEN), model(0, scorer='transe')):
        assert net.feature_modalities == [] and net.modality_names == ['structure']
        h, r, t = triples()
        expect = net.scorer(net.entity_emb(h), net.rel_emb(r), net.entity_emb(t))
        torch.testing.assert_close(net(h, r, t), expect)
        torch.testing.assert_close(net.modality_weights(h, r), torch.ones(7, 1))
        assert [n for n, _ in net.named_parameters()] == ['entity_emb.weight', 'rel_emb.weight']


def test_from_data_reads_the_stores():
    feats, masks = features(3)
    train = torch.stack(triples(batch=10), dim=1)
    data = build_mmkg(N, R, train, features=feats, masks=masks)
    net = NativE.from_data(data, HIDDEN, margin=4.0)
    assert net.feature_modalities == ['image', 'text', 'numeric']
    assert torch.equal(net.inputs.rows('text'), data['text'].x)
    assert torch.equal(net.inputs.mask('text'), data['text'].mask)
    assert NativE.from_data(data, HIDDEN, modalities=['text']).feature_modalities == ['text']
    plain = NativE.from_data(data, HIDDEN, modalities=[])
    assert plain.fusion is None and plain.num_entities == N and plain.num_relations == R
    h, r, t = split_triples(data).unbind(1)
    assert net(h, r, t).shape == (10,)


def test_random_and_zero_missing_modes():
    feats, masks = features(2)
    rnd = NativE(N, R, HIDDEN, feats, masks, missing='random', seed=3)
    again = NativE(N, R, HIDDEN, feats, masks, missing='random', seed=3)
    missing = ~masks['image']
    x_rnd = rnd.inputs.rows('image')
    assert torch.equal(x_rnd, again.inputs.rows('image'))         # fixed rows
    assert (x_rnd[missing] != 0).all()                             # random, not zero
    assert torch.equal(x_rnd[~missing], feats['image'][~missing])  # present rows kept
    assert (rnd.modality_weights(torch.arange(N), 0) > 0).all()          # all take part
    zero = NativE(N, R, HIDDEN, feats, masks, missing='zero')
    assert (zero.inputs.rows('image', missing.nonzero().view(-1)) == 0).all()
    w = zero.modality_weights(torch.arange(N), 0)
    assert (w > 0).all()
    # zero rows all become one constant projected vector
    emb, _ = zero.modality_embeddings(torch.nonzero(missing).view(-1))
    torch.testing.assert_close(emb[:, 1], emb[:1, 1].expand_as(emb[:, 1]))


def test_set_features_swaps_masks_and_checks_names():
    net = model(2)
    feats, masks = features(2)
    before = net.modality_weights(torch.arange(N), 0)
    masks = {m: torch.zeros(N, dtype=torch.bool) for m in masks}  # all features removed
    net.inputs.set_features({m: torch.zeros_like(x) for m, x in feats.items()}, masks)
    after = net.modality_weights(torch.arange(N), 0)
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, torch.eye(3)[[0] * N])
    with pytest.raises(ValueError):
        net.inputs.set_features({'image': feats['image']})
    with pytest.raises(ValueError):
        net.inputs.set_features({'image': feats['image'], 'text': feats['image']})


def test_seeded_initialisation_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = model(2, seed=5), model(2, seed=5), model(2, seed=6)
    assert torch.equal(torch.get_rng_state(), state)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert not torch.equal(a.entity_emb.weight, c.entity_emb.weight)
    b.reset_parameters()
    assert torch.equal(a.projections.mlps['text'][0].weight, b.projections.mlps['text'][0].weight)


def test_unknown_scorer_missing_mode_or_mismatched_features_are_refused():
    feats, masks = features(1)
    with pytest.raises(ValueError):
        NativE(N, R, HIDDEN, feats, masks, scorer='nope')
    with pytest.raises(ValueError):
        NativE(N, R, HIDDEN, feats, masks, missing='drop')
    with pytest.raises(ValueError):
        NativE(N, R, HIDDEN, {'image': torch.randn(N + 1, 3)})
    with pytest.raises(ValueError):
        NativE(N, R, HIDDEN, feats, {'text': masks['image']})


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_the_model_and_comat_losses_run_on_cuda_and_match_the_cpu():
    from native_pyg.nn import CoMATGenerator, critic_loss, generator_loss, gradient_penalty
    net = model(3).cuda()
    assert net.inputs.rows('image').is_cuda and net.inputs.mask('image').is_cuda
    h, r, t = (x.cuda() for x in triples())
    cpu = model(3)
    torch.testing.assert_close(net(h, r, t).cpu(), cpu(*triples()), atol=1e-4, rtol=1e-4)
    assert net.score_tails(h, r).is_cuda and net.score_heads(r.cpu(), t.cpu()).is_cuda
    gen = CoMATGenerator(net.feature_modalities, net.entity_dim).cuda()
    for loss in (critic_loss(net, gen, h, r, t), gradient_penalty(net, gen, h, r, t),
                 generator_loss(net, gen, h, r, t)):
        assert loss.is_cuda and torch.isfinite(loss)


def test_tiny_kg_is_fitted_to_filtered_mrr_one():
    # 10 entities, 2 relations, 20 triples (some 1-N, some N-1)
    g = torch.Generator().manual_seed(0)
    kg = torch.tensor([[h, h % 2, (3 * h + 1 + k) % 10] for h in range(10) for k in range(2)])
    feats = {'image': torch.randn(10, 6, generator=g), 'text': torch.randn(10, 5, generator=g)}
    masks = {'image': torch.arange(10) % 3 != 0, 'text': torch.arange(10) % 4 != 1}
    net = NativE(10, 2, 16, feats, masks, margin=6.0, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    h, r, t = kg.unbind(1)
    for step in range(150):
        neg = torch.randint(0, 10, (20, 10), generator=g)
        pos, neg_scores = net.score_negatives(h, r, t, neg, torch.arange(20) % 2 == step % 2)
        p = torch.softmax(2.0 * neg_scores, dim=1).detach()   # self-adversarial weights
        loss = -torch.nn.functional.logsigmoid(pos).mean() \
            - (p * torch.nn.functional.logsigmoid(-neg_scores)).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    with torch.no_grad():
        known = {tuple(x) for x in kg.tolist()}
        reciprocal = []
        for tails, scores in ((True, net.score_tails(h, r)), (False, net.score_heads(r, t))):
            for i, (hh, rr, tt) in enumerate(kg.tolist()):
                target = tt if tails else hh
                other = [(hh, rr, e) if tails else (e, rr, tt) for e in range(10)]
                keep = torch.tensor([x not in known or e == target for e, x in enumerate(other)])
                rank = 1 + int((scores[i][keep] > scores[i, target]).sum())
                reciprocal.append(1.0 / rank)
    assert sum(reciprocal) / len(reciprocal) == 1.0


@pytest.mark.parametrize('fusion,num_modalities', [('redaf', 2), ('mean', 2), ('redaf', 0)])
def test_what_the_model_says_it_does(fusion, num_modalities):
    net = model(num_modalities, fusion=fusion)
    emb, mask = net.modality_embeddings(torch.arange(N))
    guided = fusion == 'redaf' and num_modalities > 0
    assert net.uses_relation_guided_fusion == guided
    assert net.fusion_name == (fusion if num_modalities else 'none')
    logits = net.attention_logits(emb)
    if guided:  # the logits fuse as the fusion computes them itself
        assert logits.shape == (N, 1 + num_modalities)
        rel = torch.tensor(2)
        torch.testing.assert_close(net.fuse(emb, mask, rel, logits=logits),
                                   net.fuse(emb, mask, rel))
    else:
        assert logits is None

