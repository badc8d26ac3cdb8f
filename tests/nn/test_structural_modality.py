"""The structural modality: the encoder's input built once for the
whole-graph, layer-wise and subgraph paths, and which entities' structure
takes part."""
import pytest
import torch

from native_pyg.nn import NativE, layerwise_structural_embeddings

N, R, HIDDEN = 12, 3, 4
EDGES = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])


def model(num_modalities=2, **kwargs):
    g = torch.Generator().manual_seed(0)
    feats, masks = {}, {}
    for i, m in enumerate(['image', 'text'][:num_modalities]):
        masks[m] = torch.rand(N, generator=g) > 0.3
        masks[m][0], masks[m][5] = False, True  # entity 0: no feature; 5: every one
        feats[m] = torch.randn(N, 3 + i, generator=g) * masks[m].unsqueeze(1)
    return NativE(N, R, HIDDEN, feats, masks, **kwargs)


@pytest.mark.parametrize('encoder_input', ['structure', 'structure+modalities'])
def test_the_encoders_input_is_built_once_for_both_paths(encoder_input):
    net = model(2, encoder='rgcn', encoder_input=encoder_input, edge_index=EDGES,
                edge_type=torch.tensor([0, 1, 2, 0, 1])).eval()
    reads = encoder_input == 'structure+modalities'
    assert net.encoder_reads_features == reads
    assert model(0, encoder_input=encoder_input).encoder_reads_features is False
    ids = torch.tensor([0, 3, 7])
    table = net.entity_emb(ids)
    x = net.encoder_input(ids)
    if reads:  # the table plus the mean projected modality embedding
        mean = net.projections.mean_embedding(net.inputs, ids, table)
        torch.testing.assert_close(x, table + mean)
        assert not torch.equal(x, table)
    else:
        assert torch.equal(x, table) and net.encoder_input(None) is net.entity_emb.weight
    torch.testing.assert_close(net.encoder_input(None)[ids], x)
    calls = []
    net.structural_encoder.register_forward_hook(lambda mod, args, out: calls.append(args[0]))
    with torch.no_grad():
        net.structural_embeddings(ids)
    torch.testing.assert_close(calls[0], net.encoder_input(None))
    # layer-wise inference reads the same input, a chunk at a time
    torch.testing.assert_close(layerwise_structural_embeddings(net, batch_size=5),
                               net.structural_embeddings(None))


def test_hidden_structure_masks_entities_with_features_only():
    net = model(2, edge_index=EDGES, edge_type=torch.tensor([0, 1, 2, 0, 1]))
    assert net.masks_structure
    assert not model(2, structure_mask=False).masks_structure
    assert not model(2, missing='zero').masks_structure and not model(0).masks_structure
    ids = torch.arange(N)
    featureless = ~torch.stack([net.inputs.mask(m) for m in net.feature_modalities], 1).any(1)
    assert featureless[0] and not featureless[5] and not featureless[10:].all()
    _, mask = net.modality_embeddings(ids)
    # entities 10 and 11 are in no triple: no structure, unless they have nothing else
    assert torch.equal(mask[:, 0], (ids < 10) | featureless)
    hidden = torch.zeros(N, dtype=torch.bool)
    hidden[[0, 1, 5]] = True
    with net.hidden_structure(hidden):
        _, inside = net.modality_embeddings(ids)
    assert torch.equal(inside[:, 0], ((ids < 10) & ~hidden) | featureless)
    assert bool(inside[0, 0]) and not inside[5, 0]
    _, after = net.modality_embeddings(ids)
    assert torch.equal(after, mask)


def test_calls_over_all_entities_are_refused_inside_a_subgraph():
    net = model(2, encoder='rgcn', edge_index=EDGES, edge_type=torch.tensor([0, 1, 2, 0, 1]))
    n_id = torch.tensor([0, 5])
    with net.subgraph(n_id, torch.tensor([[0], [1]]), torch.tensor([0])):
        assert net.structural_embeddings(n_id).shape == (2, net.entity_dim)
        for call in (lambda: net.structural_embeddings(None),
                     lambda: net.score_tails(n_id, torch.tensor([0, 0]))):
            with pytest.raises(ValueError, match='inside model.subgraph'):
                call()
