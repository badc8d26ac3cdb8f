"""NativE over a disk feature store: the same scores as on resident
features, a step that reads its own entities' rows only, added entities."""
import pytest
import torch

from native_pyg.data import split_edges, split_triples
from native_pyg.data.feature_store import DiskFeatureStore, write_feature_store
from native_pyg.data.schema import modalities
from native_pyg.datasets import SyntheticMMKG
from native_pyg.nn import NativE
from native_pyg.nn.stored_inputs import StoredEntityInputs


@pytest.fixture(scope='module')
def data():
    return SyntheticMMKG(seed=3, num_entities=120, num_relations=3)[0]


def on_store(data, root, dtype='float32', **kwargs):
    mods = modalities(data)
    write_feature_store(str(root), {m: data[m].x for m in mods},
                        {m: data[m].mask for m in mods}, dtype=dtype, chunk_rows=50)
    store = DiskFeatureStore(str(root))
    edge_index, edge_type = split_edges(data, 'train')
    inputs = StoredEntityInputs(store, data.num_relations, missing=kwargs.get('missing', 'mask'))
    return NativE(store.num_entities, data.num_relations, 8, inputs=inputs,
                  edge_index=edge_index, edge_type=edge_type, **kwargs)


class Recording(DiskFeatureStore):
    """A disk store that records the row indices asked for."""
    asked = []

    def _get_tensor(self, attr):
        if attr.attr_name == 'x':
            self.asked.append(None if attr.index is None else attr.index.tolist())
        return super()._get_tensor(attr)


@pytest.mark.parametrize('missing', ['mask', 'zero'])
def test_the_same_scores_as_on_resident_features(data, tmp_path, missing):
    resident = NativE.from_data(data, 8, missing=missing)
    stored = on_store(data, tmp_path / 's', missing=missing)
    for key, value in resident.state_dict().items():
        assert torch.equal(stored.state_dict()[key], value), key
    h, r, t = split_triples(data, 'test')[:6].unbind(1)
    torch.testing.assert_close(stored(h, r, t), resident(h, r, t), rtol=0, atol=0)
    torch.testing.assert_close(stored.score_tails(h, r), resident.score_tails(h, r),
                               rtol=0, atol=0)
    assert torch.equal(stored.inputs.has_structure(), resident.inputs.has_structure())
    # where the rows live is a public property of the inputs: no probing for it
    assert resident.inputs.store is None
    assert isinstance(stored.inputs.store, DiskFeatureStore)


def test_fp16_storage_stays_close(data, tmp_path):
    resident = NativE.from_data(data, 8)
    stored = on_store(data, tmp_path / 'half', dtype='float16')
    h, r, t = split_triples(data, 'test')[:6].unbind(1)
    torch.testing.assert_close(stored(h, r, t), resident(h, r, t), rtol=1e-2, atol=1e-2)


def test_a_step_reads_the_rows_of_its_own_entities_only(data, tmp_path):
    model = on_store(data, tmp_path / 's')
    model.inputs.store = Recording(str(tmp_path / 's'))
    Recording.asked.clear()
    h, r, t = torch.tensor([4, 9]), torch.tensor([0, 1]), torch.tensor([9, 30])
    model(h, r, t)
    asked = sorted({i for index in Recording.asked for i in index})
    assert asked and set(asked) <= {4, 9, 30}
    assert None not in Recording.asked


def test_added_entities_and_refusals(data, tmp_path):
    model = on_store(data, tmp_path / 's')
    n = model.num_entities
    mod = model.feature_modalities[0]
    ids = model.add_entities({mod: data[mod].x[2] * 0.5}, names=['Kotka'])
    assert ids.tolist() == [n] and model.added_entity_names == ['Kotka']
    both = model.inputs.rows(mod, torch.tensor([2, n]))
    torch.testing.assert_close(both[1], data[mod].x[2] * 0.5)
    assert model.score_tails(ids, torch.tensor([0])).shape == (1, n + 1)
    with pytest.raises(ValueError, match='missing='):
        StoredEntityInputs(DiskFeatureStore(str(tmp_path / 's')), 3, missing='random')
    with pytest.raises(ValueError, match='not in the feature store'):
        StoredEntityInputs(DiskFeatureStore(str(tmp_path / 's')), 3, modalities=['audio'])
    with pytest.raises(ValueError, match='feature store'):
        model.inputs.set_features({mod: data[mod].x})
    with pytest.raises(ValueError, match='or inputs, not both'):
        NativE(n, 3, 8, features={mod: data[mod].x}, inputs=model.inputs)
    with pytest.raises(ValueError, match='given to a model'):
        NativE(n + 5, 3, 8, inputs=model.inputs)


def test_a_store_that_cannot_tell_a_rewrite_is_refused_in_one_line(data, tmp_path):
    class NoIdentity:  # rows and sizes, but no identity()
        num_entities, dims = 120, {'image': 4}

        def get_tensor(self, *args, **kwargs):
            raise AssertionError('never read')

    with pytest.raises(TypeError, match='identity') as err:
        StoredEntityInputs(NoIdentity(), data.num_relations)
    assert '\n' not in str(err.value)
    model = on_store(data, tmp_path / 's')
    assert model.inputs.store.identity() == DiskFeatureStore(str(tmp_path / 's')).identity()
