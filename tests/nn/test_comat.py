import math

import pytest
import torch

from native_pyg.nn import (SCORERS, CoMATGenerator, NativE, adversarial_embeddings,
                           fake_joint_embeddings, critic_loss, critic_terms,
                           generator_loss, gradient_penalty)

N, R, HIDDEN = 10, 3, 4
MODALITIES = ['image', 'text', 'numeric', 'audio', 'video']


def setup(num_modalities=2, scorer='rotate', **kwargs):
    g = torch.Generator().manual_seed(0)
    feats, masks = {}, {}
    for i, m in enumerate(MODALITIES[:num_modalities]):
        masks[m] = torch.rand(N, generator=g) > 0.3
        masks[m][0] = False                      # entity 0: no features at all
        feats[m] = torch.randn(N, 3 + i, generator=g) * masks[m].unsqueeze(1)
    net = NativE(N, R, HIDDEN, feats, masks, scorer=scorer, margin=4.0, **kwargs)
    gen = CoMATGenerator(net.feature_modalities, net.entity_dim, noise_dim=8, hidden=16)
    h = torch.arange(1, N)
    return net, gen, (h, h % R, (h + 3) % N)


@pytest.mark.parametrize('num_modalities', range(1, 6))
def test_generator_shapes_and_architecture(num_modalities):
    net, gen, (h, r, t) = setup(num_modalities)
    emb, _ = net.modality_embeddings(h)
    out = gen(emb)
    assert out.shape == (h.numel(), num_modalities, net.entity_dim)
    first, last = gen.mlp[0], gen.mlp[2]
    assert first.in_features == 8 + (1 + num_modalities) * net.entity_dim
    assert (first.out_features, last.out_features) == (16, num_modalities * net.entity_dim)
    assert isinstance(gen.mlp[1], torch.nn.LeakyReLU)
    defaults = CoMATGenerator(['image'], 10)
    assert (defaults.noise_dim, defaults.hidden) == (64, 512)


def test_generator_noise_and_dict_input():
    net, gen, (h, _, _) = setup(3)
    emb, _ = net.modality_embeddings(h)
    noise = torch.randn(h.numel(), 8)
    as_dict = {m: emb[:, i] for i, m in enumerate(net.modality_names)}
    torch.testing.assert_close(gen(emb, noise), gen(as_dict, noise))
    assert not torch.allclose(gen(emb), gen(emb))  # fresh noise every call
    with pytest.raises(ValueError):
        gen(emb[:, :2])
    with pytest.raises(ValueError):
        CoMATGenerator([], 8)


def test_fake_joint_embeddings():
    net, gen, (h, r, _) = setup(2)
    ent = torch.tensor([0, 1, 2, 2])
    rel = torch.tensor([0, 1, 2, 2])
    noise = torch.randn(4, 8)
    fake = fake_joint_embeddings(net, gen, ent, rel, noise)
    assert fake.shape == (4, net.entity_dim)
    emb, mask = net.modality_embeddings(ent)
    rows = torch.cat([emb[:, :1], gen(emb, noise)], dim=1)
    torch.testing.assert_close(fake, net.fusion(rows, mask, rel)[0])
    # an entity without features has nothing to fake: its fake joint is its structure
    torch.testing.assert_close(fake[0], net.entity_emb.weight[0], rtol=0, atol=0)
    assert not torch.allclose(fake[1], net.joint_embeddings(ent, rel)[1])
    with pytest.raises(ValueError):
        fake_joint_embeddings(NativE(N, R, HIDDEN), gen, ent, rel)


def test_critic_loss_value_and_gradients():
    net, gen, (h, r, t) = setup(3)
    torch.manual_seed(7)
    real_h, real_t, fake_h, fake_t = adversarial_embeddings(net, gen, h, r, t)
    rel = net.relation_embedding(r)
    s = net.scorer
    real = s(real_h, rel, real_t).mean()
    expect = sum(x.mean() - real for x in (s(fake_h, rel, real_t), s(real_h, rel, fake_t),
                                           s(fake_h, rel, fake_t)))
    torch.manual_seed(7)
    loss = critic_loss(net, gen, h, r, t)
    torch.testing.assert_close(loss, expect)
    torch.manual_seed(7)
    torch.testing.assert_close(critic_loss(net, gen, torch.stack([h, t]), r), expect)
    loss.backward()
    # not detached: the critic term reaches the main model *through* the generator
    for name, p in [*net.named_parameters(), *gen.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_generator_loss_value_and_gradients():
    net, gen, (h, r, t) = setup(2)
    torch.manual_seed(3)
    real_h, real_t, fake_h, fake_t = adversarial_embeddings(net, gen, h, r, t)
    rel = net.relation_embedding(r)
    s = net.scorer
    expect = sum((net.margin - x).mean() for x in (
        s(fake_h, rel, real_t), s(real_h, rel, fake_t), s(fake_h, rel, fake_t))) / 3
    torch.manual_seed(3)
    loss = generator_loss(net, gen, h, r, t)
    torch.testing.assert_close(loss, expect)
    loss.backward()
    assert all(p.grad is None for p in net.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())
    assert all(p.requires_grad for p in net.parameters())  # unfrozen afterwards


@pytest.mark.parametrize('scorer', sorted(SCORERS))
def test_gradient_penalty_is_finite(scorer):
    net, gen, (h, r, t) = setup(2, scorer=scorer)
    for gp_on in ('both', 'head'):
        gp = gradient_penalty(net, gen, h, r, t, gp_on=gp_on)
        assert gp.dim() == 0 and torch.isfinite(gp) and gp >= 0
    with torch.no_grad():  # usable for monitoring too
        assert torch.isfinite(gradient_penalty(net, gen, h, r, t))
    with pytest.raises(ValueError):
        gradient_penalty(net, gen, h, r, t, gp_on='tail')


def test_gradient_penalty_follows_the_score_gradient():
    # RotatE: each complex coordinate contributes a unit-modulus gradient, so
    # ||grad_h S|| = sqrt(d) and ||grad_(h,t) S|| = sqrt(2d) at any point
    net, gen, (h, r, t) = setup(2)
    d = HIDDEN
    for shortcut in (True, False):  # the constant the scorer declares, and autograd's value
        if not shortcut:
            net.scorer.constant_gradient_norm = lambda wrt='both': None
        torch.testing.assert_close(gradient_penalty(net, gen, h, r, t, gp_on='head'),
                                   torch.tensor((math.sqrt(d) - 1) ** 2))
        torch.testing.assert_close(gradient_penalty(net, gen, h, r, t, gp_on='both'),
                                   torch.tensor((math.sqrt(2 * d) - 1) ** 2))
    # DistMult: grad_h S = r * t depends on the relation, which the penalty trains
    net, gen, (h, r, t) = setup(2, scorer='distmult')
    gradient_penalty(net, gen, h, r, t).backward()
    assert net.rel_emb.weight.grad is not None and net.rel_emb.weight.grad.abs().sum() > 0
    assert net.entity_emb.weight.grad is None and all(p.grad is None for p in gen.parameters())


def test_critic_terms_match_separate_calls():
    net, gen, (h, r, t) = setup(2, scorer='complex')
    torch.manual_seed(5)
    critic, gp = critic_terms(net, gen, h, r, t, gp_on='head')
    torch.manual_seed(5)
    torch.testing.assert_close(critic, critic_loss(net, gen, h, r, t))
    torch.manual_seed(5)  # same noise, then the same interpolation weights
    torch.testing.assert_close(gp, gradient_penalty(net, gen, h, r, t, gp_on='head'))


def test_adversarial_training_steps_run():
    net, gen, (h, r, t) = setup(3)
    opt_d = torch.optim.Adam(net.parameters(), lr=1e-2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in net.parameters()]
    for _ in range(3):
        opt_d.zero_grad()
        critic, gp = critic_terms(net, gen, h, r, t)
        (-net(h, r, t).mean() + 0.1 * critic + 0.01 * gp).backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = generator_loss(net, gen, h, r, t)
        loss_g.backward()
        opt_g.step()
        assert torch.isfinite(critic) and torch.isfinite(gp) and torch.isfinite(loss_g)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize('missing', ['mask', 'random'])
def test_runs_under_bfloat16_autocast(missing):
    net, gen, (h, r, t) = setup(2, missing=missing, relation_temperature=False)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        pos, neg = net.score_negatives(h, r, t, torch.randint(0, N, (h.numel(), 3)),
                                       torch.rand(h.numel()) > 0.5)
        critic, gp = critic_terms(net, gen, h, r, t)
        loss_g = generator_loss(net, gen, h, r, t)
    (pos.sum() - neg.sum() + critic + gp).backward()
    loss_g.backward()
    assert all(torch.isfinite(x).all() for x in (pos, neg, critic, gp, loss_g))


@pytest.mark.parametrize('encoder', [None, 'rgcn'])
def test_step_embeddings_share_the_positives_rows_with_the_same_loss_and_gradients(encoder):
    # the KGC loss embeds positives and negatives; inside step_embeddings the critic gathers
    # the positives' rows from that (one projection, one encoder pass) instead of recomputing
    kwargs = {} if encoder is None else dict(encoder=encoder, edge_index=torch.stack(
        [torch.arange(N), (torch.arange(N) + 1) % N]), edge_type=torch.arange(N) % R)
    net, gen, (h, r, t) = setup(2, **kwargs)
    neg = (torch.arange(h.numel() * 3).view(-1, 3) * 7) % N
    calls = []
    net.projections.mlps['image'].register_forward_hook(lambda *a: calls.append('projection'))
    if encoder is not None:
        net.structural_encoder.register_forward_hook(lambda *a: calls.append('encoder'))

    def loss_and_grads():
        calls.clear()
        torch.manual_seed(5)  # the generator's noise
        pos_s, neg_s = net.score_negatives(h, r, t, neg, torch.zeros(h.numel(), dtype=torch.bool))
        critic, _ = critic_terms(net, gen, h, r, t)
        loss = pos_s.sum() - neg_s.sum() + critic
        params = [p for p in net.parameters() if p.requires_grad]
        return loss, torch.autograd.grad(loss, params, allow_unused=True), list(calls)

    plain, plain_grads, plain_calls = loss_and_grads()
    with net.step_embeddings():
        shared, shared_grads, shared_calls = loss_and_grads()
    assert plain_calls.count('projection') == 2 and shared_calls.count('projection') == 1
    if encoder is not None:
        assert plain_calls.count('encoder') == 2 and shared_calls.count('encoder') == 1
    torch.testing.assert_close(shared, plain)
    for a, b in zip(shared_grads, plain_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)
