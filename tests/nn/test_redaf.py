import pytest
import torch

from native_pyg.nn import ModalityProjections, ReDAF

D, R = 8, 4


def batch(num=6, modalities=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(num, modalities, D, generator=g)
    mask = torch.rand(num, modalities, generator=g) > 0.4
    mask[:, 0] = True                  # the structural embedding is always there
    mask[0, 1:] = False                # an entity with no features
    mask[1, 1:] = True                 # an entity with all of them
    rel = torch.randint(0, R, (num,), generator=g)
    return emb, mask, rel


def dense_reference(fusion, emb, mask, rel):
    """Masked dense softmax: what the scatter softmax must equal."""
    logits = (torch.tanh(emb) @ fusion.u.weight.view(-1))
    tau = torch.sigmoid(fusion.theta.weight.view(-1)[rel]) if fusion.theta is not None else 1.0
    logits = (logits / (tau.view(-1, 1) if torch.is_tensor(tau) else tau)).masked_fill(
        ~mask, float('-inf'))
    w = torch.softmax(logits, dim=1)
    return (w.unsqueeze(-1) * emb).sum(1), w


def test_encoders_architecture_and_shapes():
    enc = ModalityProjections({'image': 7, 'text': 5, 'audio': 3}, D)
    assert enc.modalities == ['image', 'text', 'audio']
    layers = enc.mlps['image']
    assert [type(m).__name__ for m in layers] == ['Linear', 'ReLU', 'Linear']
    assert (layers[0].in_features, layers[0].out_features, layers[2].out_features) == (7, D, D)
    out = enc({'image': torch.randn(4, 7), 'audio': torch.randn(4, 3)})
    assert set(out) == {'image', 'audio'} and out['audio'].shape == (4, D)
    for bad in ({'a.b': 3}, {'structure': 3}, {'': 3}):
        with pytest.raises(ValueError):
            ModalityProjections(bad, D)


def test_scatter_softmax_equals_masked_dense_softmax():
    emb, mask, rel = batch()
    fusion = ReDAF(D, R)
    fused, weights = fusion(emb, mask, rel)
    expect_fused, expect_w = dense_reference(fusion, emb, mask, rel)
    assert fused.shape == (6, D) and weights.shape == (6, 4)
    torch.testing.assert_close(weights, expect_w)
    torch.testing.assert_close(fused, expect_fused)
    torch.testing.assert_close(weights.sum(1), torch.ones(6))


def test_missing_modality_weight_is_exactly_zero_and_no_features_gives_structure():
    emb, mask, rel = batch()
    fused, weights = ReDAF(D, R)(emb, mask, rel)
    assert (weights[~mask] == 0).all() and (weights[mask] > 0).all()
    assert torch.equal(weights[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(fused[0], emb[0, 0], rtol=0, atol=0)


def test_relation_temperature_changes_weights():
    emb, mask, _ = batch()
    fusion = ReDAF(D, R)
    with torch.no_grad():
        fusion.theta.weight[:, 0] = torch.tensor([-3.0, 0.0, 3.0, 0.0])
    w = [fusion(emb, mask, torch.full((6,), r))[1] for r in range(R)]
    assert not torch.allclose(w[0], w[2])
    torch.testing.assert_close(w[1], w[3])
    # a lower temperature sharpens: the top weight of an entity with >1 modality grows
    assert (w[0][1].max() > w[1][1].max()) and (w[1][1].max() > w[2][1].max())


def test_without_relation_temperature_weights_ignore_the_relation():
    emb, mask, rel = batch()
    fusion = ReDAF(D, R, relation_temperature=False)
    assert fusion.theta is None
    assert [n for n, _ in fusion.named_parameters()] == ['u.weight']
    w0 = fusion(emb, mask, torch.zeros(6, dtype=torch.long))[1]
    torch.testing.assert_close(w0, fusion(emb, mask, rel)[1])
    torch.testing.assert_close(w0, dense_reference(fusion, emb, mask, rel)[1])  # tau = 1
    torch.testing.assert_close(w0, fusion(emb, mask)[1])


def test_mean_fusion():
    emb, mask, rel = batch()
    fusion = ReDAF(D, R, fusion='mean')
    assert list(fusion.parameters()) == []
    fused, weights = fusion(emb, mask, rel)
    count = mask.sum(1, keepdim=True).float()
    torch.testing.assert_close(weights, mask.float() / count)
    torch.testing.assert_close(fused, (emb * mask.unsqueeze(-1)).sum(1) / count)


@pytest.mark.parametrize('missing', ['random', 'zero'])
def test_random_and_zero_modes_let_every_modality_take_part(missing):
    emb, mask, rel = batch()
    fusion = ReDAF(D, R, missing=missing)
    weights = fusion(emb, mask, rel)[1]
    assert (weights > 0).all()
    torch.testing.assert_close(weights, fusion(emb, None, rel)[1])


def test_dict_input_single_relation_and_index():
    emb, mask, rel = batch()
    fusion = ReDAF(D, R)
    names = ['structure', 'image', 'text', 'audio']
    emb_dict = {m: emb[:, i] for i, m in enumerate(names)}
    mask_dict = {m: mask[:, i] for i, m in enumerate(names) if m != 'structure'}
    fused, weights = fusion(emb, mask, rel)
    fused_d, weights_d = fusion(emb_dict, mask_dict, rel)
    torch.testing.assert_close(fused_d, fused)
    torch.testing.assert_close(weights_d, weights)
    # one relation for all rows == that relation repeated
    one = fusion(emb, mask, torch.tensor(2))
    torch.testing.assert_close(one[0], fusion(emb, mask, torch.full((6,), 2))[0])
    torch.testing.assert_close(one[1], fusion(emb, mask, 2)[1])
    # index: rows gathered inside == gathered before
    index = torch.tensor([5, 0, 5, 3, 1, 1, 2])
    rel_rows = torch.randint(0, R, (7,))
    got = fusion(emb, mask, rel_rows, index=index)
    expect = fusion(emb[index], mask[index], rel_rows)
    torch.testing.assert_close(got[0], expect[0])
    torch.testing.assert_close(got[1], expect[1])


def test_gradients_reach_attention_and_temperature():
    emb, mask, rel = batch()
    emb.requires_grad_()
    fusion = ReDAF(D, R)
    fused, _ = fusion(emb, mask, rel)
    fused.pow(2).sum().backward()
    assert fusion.u.weight.grad.abs().sum() > 0
    used = torch.unique(rel[mask.sum(1) > 1])
    assert (fusion.theta.weight.grad[used] != 0).all()
    assert (emb.grad[~mask] == 0).all()  # a missing modality takes no part at all


def test_unknown_fusion_or_missing_mode_and_a_missing_relation_are_refused():
    emb, mask, rel = batch()
    with pytest.raises(ValueError):
        ReDAF(D, R, fusion='max')
    with pytest.raises(ValueError):
        ReDAF(D, R, missing='drop')
    with pytest.raises(ValueError):
        ReDAF(D, R)(emb, mask)  # the temperature needs the relation
    with pytest.raises(ValueError):
        ReDAF(D, R)(emb, mask, rel[:3])


@pytest.mark.parametrize('fusion_kind', ['redaf', 'mean'])
def test_fusing_rows_by_index_equals_gathering_them_values_and_gradients(fusion_kind):
    """Rows fused through ``index`` (a weighted bag of each row's modality
    rows, never gathered) equal fusing the gathered rows: values and the
    gradients of the embeddings, the attention and the temperature, in
    float64; repeated rows accumulate their gradients."""
    torch.manual_seed(3)
    emb, mask, _ = batch()
    emb = emb.double().requires_grad_()
    fusion = ReDAF(D, R, fusion=fusion_kind).double()
    index = torch.tensor([5, 0, 5, 3, 1, 1, 2, 5, 4])
    rel_rows = torch.randint(0, R, (index.numel(),))
    grad_out = torch.randn(index.numel(), D, dtype=torch.float64)
    grads = []
    for gathered in (False, True):
        emb.grad = None
        fusion.zero_grad()
        out = (fusion(emb[index], mask[index], rel_rows) if gathered
               else fusion(emb, mask, rel_rows, index=index))
        (out[0] * grad_out).sum().backward()
        grads.append([out[0].detach(), emb.grad.clone(),
                      *[p.grad.clone() for p in fusion.parameters()]])
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_all_rows_without_gradient_equal_the_scatter_path_and_any_split_of_them(monkeypatch):
    # 1-vs-all fuses all candidates under one relation without gradient (dense weights,
    # a tiled weighted sum); rows fused in blocks must equal rows fused at once, bit for bit
    from native_pyg.nn import redaf
    emb, mask, rel = batch()
    for fusion in (ReDAF(D, R), ReDAF(D, R, fusion='mean'), ReDAF(D, R, relation_temperature=False)):
        with torch.no_grad():
            fused, weights = fusion(emb, mask, 2)
        expect_fused, expect_w = fusion(emb, mask, torch.full((emb.size(0),), 2))  # with grad
        torch.testing.assert_close(weights, expect_w.detach())
        torch.testing.assert_close(fused, expect_fused.detach())
        assert (weights[~mask] == 0).all()
        monkeypatch.setattr(redaf, 'FUSE_TILE', 4)
        with torch.no_grad():
            parts = [fusion(emb[i:i + 2], mask[i:i + 2], 2)[0] for i in range(0, emb.size(0), 2)]
        monkeypatch.undo()
        assert torch.equal(torch.cat(parts), fused)
