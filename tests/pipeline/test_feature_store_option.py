"""``data.feature_store: disk``: the model reads its rows from a store
written once under the dataset root, with the scores of the resident model."""
import os

import pytest
import torch

from native_pyg.loader.neighbor_loader import KGBatch, KGNeighborLoader, neighbor_sampling_backend
from native_pyg.datasets import SyntheticMMKG
from native_pyg.nn.stored_inputs import StoredEntityInputs
from native_pyg.builders import feature_store_dir
from native_pyg.pipeline import build_model
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
def test_a_float16_store_gives_its_rows_as_stored(graph, tmp_path):
    """The step's subgraph holds float16 rows (half the bytes of float32);
    the model's scores and gradients on them are those of float32 rows."""
    from native_pyg.data.feature_store import write_feature_store
    run = run_config(tmp_path, 'disk')
    run.model.encoder = 'rgcn'
    model = build_model(graph, run)
    x = {m: model.inputs.store.get_tensor(m, 'x', index=None) for m in model.feature_modalities}
    k = {m: model.inputs.store.get_tensor(m, 'mask', index=None) for m in x}
    half = write_feature_store(str(tmp_path / 'half'), x, k, dtype='float16')
    pos = torch.tensor([[0, 0, 3], [5, 1, 9]])
    steps = [KGBatch(pos, torch.tensor([[7, 8], [9, 10]]), torch.tensor([True, False]))]
    batch = next(iter(KGNeighborLoader(graph, [3], steps, feature_store=half)))
    assert {v.dtype for v in batch.x_dict.values()} == {torch.float16}
    for m, v in batch.x_dict.items():
        assert torch.equal(v.float(), half.get_tensor(m, 'x', index=batch.n_id))
    losses = []
    for rows in (batch.x_dict, {m: v.float() for m, v in batch.x_dict.items()}):
        model.zero_grad()
        with model.subgraph(**{**batch.subgraph_kwargs(), 'x_dict': rows}):
            loss = model(pos[:, 0], pos[:, 1], pos[:, 2]).sum()
        loss.backward()
        losses.append((loss.detach(), [p.grad.clone() for p in model.projections.parameters()]))
    assert torch.equal(losses[0][0], losses[1][0])
    assert all(torch.equal(a, b) for a, b in zip(losses[0][1], losses[1][1]))


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


def test_train_on_a_store_written_by_convert_features(tmp_path, capsys):
    # issue 39: a converted store could not be trained on, and took no masks
    import json
    import shutil

    import numpy as np

    from native_pyg.cli import main
    from tests.conftest import REPO
    folder = tmp_path / 'kg'
    shutil.copytree(REPO / 'examples' / 'my_mmkg', folder,
                    ignore=shutil.ignore_patterns('processed', 'features', 'mmkg.yaml'))
    rng = np.random.default_rng(0)
    np.save(tmp_path / 'text.npy', rng.standard_normal((40, 6)).astype(np.float32))
    present = np.ones(40, bool)
    present[:5] = False
    np.save(tmp_path / 'text.mask.npy', present)
    store = tmp_path / 'store'
    assert main(['convert-features', f'text={tmp_path / "text.npy"}',
                 f'text.mask={tmp_path / "text.mask.npy"}', '--out', str(store), '--quiet']) == 0
    capsys.readouterr()
    fast = ['--epochs', '1', '--quiet', '--set', 'model.hidden_channels=8',
            '--set', 'training.num_negatives=4']
    assert main(['train', '--dataset', str(folder), '--feature-store', str(store),
                 '--out', str(tmp_path / 'run'), *fast]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith('training NativE on kg: modalities text')
    trained = json.loads((tmp_path / 'run' / 'metrics.json').read_text())['trained']
    assert trained['modalities'] == ['text']
    assert main(['evaluate', '--checkpoint', str(tmp_path / 'run' / 'model.pt')]) == 0
    capsys.readouterr()
    # the store moved: one line saying so; --feature-store says where it lies now
    moved = tmp_path / 'moved'
    store.rename(moved)
    model_pt = str(tmp_path / 'run' / 'model.pt')
    assert main(['evaluate', '--checkpoint', model_pt]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'no such feature store' in err[0] and 'moved' in err[0], err
    assert main(['predict', '--checkpoint', model_pt, '--head', '0', '--relation', '0',
                 '--feature-store', str(moved)]) == 0
    assert main(['evaluate', '--checkpoint', model_pt, '--feature-store', str(moved)]) == 0
    moved.rename(store)
    capsys.readouterr()
    # a store written again with other rows: the checkpoint says so, in one line
    np.save(tmp_path / 'other.npy', rng.standard_normal((40, 6)).astype(np.float32))
    assert main(['convert-features', f'text={tmp_path / "other.npy"}', '--out',
                 str(tmp_path / 'other'), '--quiet']) == 0
    capsys.readouterr()
    assert main(['evaluate', '--checkpoint', model_pt, '--feature-store',
                 str(tmp_path / 'other')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'changed since the model was trained' in err[0], err
    # the store cut short after training: the store is named, not the checkpoint
    (store / 'text.npy').write_bytes((store / 'text.npy').read_bytes()[:300])
    assert main(['evaluate', '--checkpoint', str(tmp_path / 'run' / 'model.pt')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'text.npy: shorter than its header says' in err[0], err
    # a store of other entities, or no store at all: one line
    np.save(tmp_path / 'short.npy', np.ones((7, 2), np.float32))
    assert main(['convert-features', f'text={tmp_path / "short.npy"}', '--out',
                 str(tmp_path / 'short'), '--quiet']) == 0
    capsys.readouterr()
    for path, words in ((tmp_path / 'short', 'holds rows of 7 entities, the dataset has 40'),
                        (tmp_path / 'nothing', 'no such feature store')):
        assert main(['train', '--dataset', str(folder), '--feature-store', str(path),
                     '--out', str(tmp_path / 'bad'), *fast]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
