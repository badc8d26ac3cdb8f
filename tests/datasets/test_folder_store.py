"""A folder's features streamed into a disk store (issue 40, part 1): the
same rows as the in-memory path, none in the processed cache, bad files one
line."""
import shutil
import warnings

import numpy as np
import pytest
import torch

from native_pyg.cli import main
from native_pyg.data.feature_store import DiskFeatureStore
from native_pyg.datasets import FolderMMKG
from native_pyg.builders import stores_folder_features
from tests.conftest import REPO


def folder(tmp_path):
    dst = tmp_path / 'kg'
    shutil.copytree(REPO / 'examples' / 'my_mmkg', dst,
                    ignore=shutil.ignore_patterns('processed'))
    return dst


def load(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return FolderMMKG(str(path), log=False, **kwargs)


def test_streamed_store_equals_the_in_memory_path_and_the_cache_holds_no_rows(tmp_path):
    kg = folder(tmp_path)
    memory = load(kg)[0]
    ds = load(kg, store_features=True)
    data = ds[0]
    assert data['entity'].name == memory['entity'].name  # same ids
    for split in ('edge_index', 'edge_type'):
        assert torch.equal(data['entity', 'relation', 'entity'][split],
                           memory['entity', 'relation', 'entity'][split])
    store = DiskFeatureStore(ds.feature_store_path)
    assert store.modalities == ['image', 'numeric']
    for m in store.modalities:
        assert torch.equal(store.get_tensor(m, 'x', index=None), memory[m].x.float())
        assert torch.equal(store.get_tensor(m, 'mask', index=None), memory[m].mask)
    cache = torch.load(ds.processed_paths[0], weights_only=True)[0]
    assert not any(k in cache for k in ('image', 'numeric'))  # no feature rows cached
    assert 'image' not in data.node_types
    again = load(kg, store_features=True)  # from the cache and the store: nothing rewritten
    assert again.feature_store_path == ds.feature_store_path


def test_bad_feature_files_are_one_line_naming_the_file_and_row(tmp_path):
    kg = folder(tmp_path)
    (kg / 'features' / 'image.npy').unlink()
    np.save(kg / 'features' / 'image.npy', np.ones((12, 16), np.float32))
    with pytest.raises(ValueError, match=r'image.npy: has 12 rows but the dataset has 40'):
        load(kg, store_features=True)
    rows = np.ones((40, 16), np.float32)
    rows[7, 3] = np.nan
    np.save(kg / 'features' / 'image.npy', rows)
    with pytest.raises(ValueError, match=r'image.npy: row 7 holds NaN/Inf'):
        load(kg, store_features=True)
    data = open(kg / 'features' / 'image.npy', 'rb').read()
    (kg / 'features' / 'image.npy').write_bytes(data[:300])  # truncated
    with pytest.raises(ValueError, match=r'image.npy: not a readable .npy file'):
        load(kg, store_features=True)
    assert not [p for p in (kg / 'processed').iterdir() if p.name.startswith('.feature_store')]


def test_the_cli_chooses_a_store_by_size_and_trains_on_it(tmp_path, capsys, monkeypatch):
    import native_pyg.builders as placement
    kg = folder(tmp_path)
    assert not stores_folder_features(str(kg), 'auto')  # 20 KB of features: in memory
    assert stores_folder_features(str(kg), 'disk')
    monkeypatch.setattr(placement, 'AUTO_DISK_BYTES', 1000)  # as if the folder were large
    assert stores_folder_features(str(kg), 'auto')
    out = tmp_path / 'run'
    assert main(['train', '--dataset', str(kg), '--out', str(out), '--quiet', '--epochs', '1',
                 '--set', 'model.hidden_channels=8', '--set', 'training.num_negatives=4']) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith('training NativE on kg: modalities image, numeric')
    import json
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['test']['protocol'] == 'streamed'  # auto: a store's rows are streamed
    assert main(['evaluate', '--checkpoint', str(out / 'model.pt')]) == 0


def test_half_precision_files_are_stored_as_they_are_read_in_small_chunks_not_mapped(
        tmp_path, monkeypatch):
    # a 4096-d fp16 image file of millions of rows would be 8 KB a row: the store keeps
    # float16 (no widening to twice the bytes), and the file is read in byte-bounded
    # slices by file reads, never memory-mapped (mapped pages count as resident memory)
    import native_pyg.data.feature_files as feature_files
    kg = folder(tmp_path)
    rows = np.random.default_rng(0).standard_normal((40, 16)).astype(np.float16)
    (kg / 'features' / 'image.npy').unlink()
    np.save(kg / 'features' / 'image.npy', rows)
    numeric = np.load(kg / 'features' / 'numeric.npy').astype(np.float16)
    (kg / 'features' / 'numeric.npy').unlink()
    np.save(kg / 'features' / 'numeric.npy', numeric)
    memory = load(kg)[0]
    monkeypatch.setattr(feature_files, 'CHUNK_BYTES', 16 * 4 * 3)  # 3 image rows a chunk
    real_load, mapped = np.load, []
    monkeypatch.setattr(np, 'load', lambda path, *a, **k: mapped.append((path, k)) or
                        real_load(path, *a, **k))
    ds = load(kg, store_features=True, force_reload=True)
    assert not [p for p, k in mapped if k.get('mmap_mode') and str(p).endswith('image.npy')]
    store = DiskFeatureStore(ds.feature_store_path)
    assert store.storage_dtype == {'image': 'float16', 'numeric': 'float16'}
    for m in ('image', 'numeric'):
        assert torch.equal(store.get_tensor(m, 'x', index=None), memory[m].x.float())
        assert torch.equal(store.get_tensor(m, 'mask', index=None), memory[m].mask)
    assert feature_files.chunk_rows_for(4096) == 4096  # 64 MiB of float32 rows
