"""EntityInputs: the one owner of what entities bring in, and the seam a
store that keeps rows elsewhere plugs into."""
import pytest
import torch

from native_pyg.nn import EntityInputs, NativE
from native_pyg.nn.legacy import upgrade_state_dict

N, R, HIDDEN = 12, 3, 4


def feats(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = {'image': torch.randn(N, 5, generator=g), 'text': torch.randn(N, 3, generator=g)}
    masks = {'image': torch.arange(N) % 3 != 0, 'text': torch.arange(N) % 2 == 0}
    return x, masks


def graph():
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    return edge_index, torch.tensor([0, 1, 2, 0])


def test_rows_masks_structure_and_graph_by_entity_id():
    x, masks = feats()
    inputs = EntityInputs(N, R, {'image': 5, 'text': 3})
    inputs.set_features(x, masks)
    inputs.set_graph(*graph())
    ids = torch.tensor([4, 0, 7])
    assert torch.equal(inputs.rows('image', ids), x['image'][ids])
    assert torch.equal(inputs.mask('text', ids), masks['text'][ids])
    assert inputs.rows('image') is inputs.rows('image')  # all rows: no copy
    assert inputs.has_structure(ids).tolist() == [True, True, False]
    edge_index, edge_type = inputs.graph()
    assert edge_index.size(1) == 8 and edge_type.max() == R + 2  # inverse edges added
    assert inputs.modalities == ['image', 'text'] and 'added=0' in repr(inputs)


def test_checks_and_random_rows():
    x, masks = feats()
    inputs = EntityInputs(N, R, {'image': 5, 'text': 3}, missing='random', seed=1)
    inputs.set_features(x, masks)
    missing = ~masks['image']
    assert torch.equal(inputs.rows('image')[~missing], x['image'][~missing])
    assert not torch.equal(inputs.rows('image')[missing], x['image'][missing])
    with pytest.raises(ValueError, match='features for'):
        inputs.set_features({'image': x['image']})
    with pytest.raises(ValueError, match='feature size'):
        inputs.set_features({'image': x['text'], 'text': x['text']})
    with pytest.raises(ValueError, match='outside'):
        inputs.set_graph(torch.tensor([[0], [N]]), torch.tensor([0]))
    with pytest.raises(ValueError, match='structure mask'):
        inputs.set_structure_mask(torch.ones(N + 1, dtype=torch.bool))


def test_every_change_bumps_the_version():
    x, masks = feats()
    inputs = EntityInputs(N, R, {'image': 5, 'text': 3})
    versions = [inputs.version]
    inputs.set_features(x, masks)
    versions.append(inputs.version)
    inputs.set_graph(*graph())
    versions.append(inputs.version)
    inputs.append({'image': torch.ones(5)}, names=['Pori'])
    versions.append(inputs.version)
    assert versions == sorted(set(versions))


def test_append_checks_and_records_added_entities():
    x, masks = feats()
    inputs = EntityInputs(N, R, {'image': 5, 'text': 3})
    inputs.set_features(x, masks)
    ids = inputs.append({'image': torch.ones(2, 5)})
    assert ids.tolist() == [N, N + 1] and inputs.num_entities == N + 2
    assert inputs.added_names == [f'added_{N}', f'added_{N + 1}']
    assert inputs.mask('text', ids).tolist() == [False, False]
    assert not inputs.has_structure(ids).any()
    features, added_masks, names = EntityInputs(N, R, {'image': 5, 'text': 3}).added_state(
        {f'added.{k}': v for k, v in inputs.added.state_dict().items()})
    assert names == inputs.added_names and torch.equal(features['image'], torch.ones(2, 5))
    with pytest.raises(ValueError, match='no present feature'):
        inputs.append({'image': torch.zeros(1, 5)})
    with pytest.raises(ValueError, match='5 columns'):
        inputs.append({'image': torch.ones(1, 4)})
    with pytest.raises(ValueError, match='2 names'):
        inputs.append({'image': torch.ones(1, 5)}, names=['a', 'b'])
    with pytest.raises(ValueError, match='structure-only'):
        EntityInputs(N, R, {}).append({'image': torch.ones(5)})


class CountingRows(EntityInputs):
    """Serves rows from storage of its own (as a disk-backed store would)
    and records which entities each read asked for."""

    def __init__(self, store, masks):
        super().__init__(N, R, {m: x.size(1) for m, x in store.items()})
        self.store, self.store_masks, self.asked = store, masks, []

    def rows(self, modality, index=None):
        self.asked.append(None if index is None else index.tolist())
        return self.store[modality] if index is None else self.store[modality][index]

    def mask(self, modality, index=None):
        mask = self.store_masks[modality]
        return mask if index is None else mask[index]


def test_a_store_of_its_own_replaces_the_resident_rows():
    x, masks = feats()
    model = NativE(N, R, HIDDEN, x, masks, edge_index=graph()[0], edge_type=graph()[1])
    h, r, t = torch.tensor([0, 5]), torch.tensor([1, 2]), torch.tensor([3, 8])
    expect, expect_all = model(h, r, t), model.score_tails(h, r)
    store = CountingRows(x, masks)
    store.set_graph(*graph())
    model.inputs = store
    torch.testing.assert_close(model(h, r, t), expect, rtol=0, atol=0)
    # a step reads the rows of its own present entities only
    present = {m: sorted(i for i in (0, 3, 5, 8) if masks[m][i]) for m in x}
    assert store.asked == [present['image'], present['text']]
    torch.testing.assert_close(model.score_tails(h, r), expect_all, rtol=0, atol=0)


def test_old_state_dict_keys_are_mapped():
    old = {'entity_emb.weight': 1, 'encoders.mlps.image.0.weight': 2,
           'added_entities.x_image': 3, 'added_entities._extra_state': 4}
    assert upgrade_state_dict(old) == {'entity_emb.weight': 1,
                                       'projections.mlps.image.0.weight': 2,
                                       'inputs.added.x_image': 3,
                                       'inputs.added._extra_state': 4}


def test_calls_over_all_entities_are_refused_inside_a_subgraph():
    x, masks = feats()
    model = NativE(N, R, HIDDEN, x, masks, encoder='rgcn', edge_index=graph()[0],
                   edge_type=graph()[1], encoder_kwargs={'num_layers': 1})
    n_id = torch.tensor([0, 1, 2])
    local = torch.tensor([[0, 1], [1, 2]])
    with model.subgraph(n_id, local, torch.tensor([0, 1])):
        assert model.structural_embeddings(torch.tensor([2, 0])).shape == (2, model.entity_dim)
        for call in (lambda: model.structural_embeddings(None),
                     lambda: model.modality_embeddings(None),
                     lambda: model.score_tails(torch.tensor([0]), torch.tensor([0])),
                     lambda: model.score_heads(torch.tensor([0]), torch.tensor([1]))):
            with pytest.raises(ValueError, match='inside model.subgraph'):
                call()
    assert model.score_tails(torch.tensor([0]), torch.tensor([0])).shape == (1, N)


def test_the_missing_option_is_one_type_asked_by_name():
    from native_pyg.nn.missing import Missing
    assert [Missing.of(m).masked for m in ('mask', 'zero', 'random')] == [True, False, False]
    assert [Missing.of(m).drawn for m in ('mask', 'zero', 'random')] == [False, False, True]
    assert Missing.MASK == 'mask' and f'{Missing.ZERO}' == 'zero'
    assert repr(Missing.RANDOM) == "'random'"
    with pytest.raises(ValueError, match=r"missing must be one of \('mask', 'random', 'zero'\), "
                                         r"got 'drop'"):
        Missing.of('drop')
    model = NativE(N, R, HIDDEN, *feats(), missing='zero')
    assert model.missing is Missing.ZERO and model.inputs.missing is Missing.ZERO
    assert "missing='zero'" in repr(model)
