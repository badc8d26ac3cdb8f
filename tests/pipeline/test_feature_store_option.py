"""``data.feature_store: disk``: the model reads its rows from a store
written once under the dataset root, with the scores of the resident model."""
import os

import pytest
import torch

from native_pyg.data.loader import KGBatch, KGNeighborLoader, neighbor_sampling_backend
from native_pyg.datasets import SyntheticMMKG
from native_pyg.nn.stored_inputs import StoredEntityInputs
from native_pyg.pipeline import build_model, feature_store_dir
from native_pyg.training import RunConfig


@pytest.fixture(scope='module')
def graph():
    return SyntheticMMKG(seed=2, num_entities=150, num_relations=3)[0]


def run_config(root, store):
    return RunConfig(dataset='synthetic', root=str(root)).override(
        ['model.hidden_channels=8', f'data.feature_store={store}'])


def test_disk_store_gives_the_resident_scores_and_is_written_once(graph, tmp_path):
    memory = build_model(graph, run_config(tmp_path, 'memory'))
    disk = build_model(graph, run_config(tmp_path, 'disk'))
    assert isinstance(disk.inputs, StoredEntityInputs)
    assert not isinstance(memory.inputs, StoredEntityInputs)
    h, r, t = torch.tensor([0, 5, 7]), torch.tensor([0, 1, 2]), torch.tensor([3, 9, 140])
    assert torch.equal(memory(h, r, t), disk(h, r, t))
    assert torch.equal(memory.score_tails(h, r), disk.score_tails(h, r))
    where = feature_store_dir(run_config(tmp_path, 'disk'))
    (store,) = os.listdir(where)
    stamp = os.stat(os.path.join(where, store, 'features.json')).st_mtime_ns
    build_model(graph, run_config(tmp_path, 'disk'))  # the same features: reused
    assert os.listdir(where) == [store]
    assert os.stat(os.path.join(where, store, 'features.json')).st_mtime_ns == stamp


@pytest.mark.skipif(neighbor_sampling_backend() is None, reason='needs torch_sparse')
def test_neighbor_loader_fetches_from_the_feature_store(graph, tmp_path):
    model = build_model(graph, run_config(tmp_path, 'disk'))
    pos = torch.tensor([[0, 0, 3], [5, 1, 9]])
    steps = [KGBatch(pos, torch.tensor([[7, 8], [9, 10]]), torch.tensor([True, False]))]
    torch.manual_seed(0)  # the same neighbours drawn twice
    from_data = next(iter(KGNeighborLoader(graph, [3], steps)))
    torch.manual_seed(0)
    from_store = next(iter(KGNeighborLoader(graph, [3], steps, feature_store=model.inputs.store)))
    assert torch.equal(from_data.n_id, from_store.n_id)
    for m in from_data.x_dict:
        assert torch.equal(from_data.x_dict[m], from_store.x_dict[m])
        assert torch.equal(from_data.mask_dict[m], from_store.mask_dict[m])


@pytest.mark.skipif(neighbor_sampling_backend() is None, reason='needs torch_sparse')
def test_seed_rows_only_give_the_same_scores(graph, tmp_path):
    run = run_config(tmp_path, 'disk')
    run.model.encoder = 'rgcn'
    model = build_model(graph, run).eval()
    pos = torch.tensor([[0, 0, 3], [5, 1, 9]])
    neg, side = torch.tensor([[7, 8], [9, 10]]), torch.tensor([True, False])
    scores = {}
    for fetch in ('nodes', 'seeds'):
        torch.manual_seed(0)
        batch = next(iter(KGNeighborLoader(graph, [3, 2], [KGBatch(pos, neg, side)],
                                           feature_store=model.inputs.store, fetch=fetch)))
        seeds = torch.unique(torch.cat([pos[:, 0], pos[:, 2], neg.flatten()])).numel()
        rows = next(iter(batch.x_dict.values())).size(0)
        assert rows == (seeds if fetch == 'seeds' else batch.n_id.numel())
        with model.subgraph(**batch.subgraph_kwargs()):
            scores[fetch] = model.score_negatives(pos[:, 0], pos[:, 1], pos[:, 2], neg, side)
    assert batch.n_id.numel() > seeds  # the subgraph holds more than the seeds
    for a, b in zip(scores['nodes'], scores['seeds']):
        assert torch.equal(a, b)
