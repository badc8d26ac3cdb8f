"""Disk-backed per-modality feature stores: round trip, precision, checks,
and a writer whose memory does not grow with the store."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import FeatureStore

from native_pyg.data.feature_store import (DiskFeatureStore, FeatureStoreWriter,
                                           write_feature_store)

REPO = Path(__file__).resolve().parents[2]


def features(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = {'image': torch.randn(n, 6, generator=g), 'text': torch.randn(n, 4, generator=g)}
    masks = {'image': torch.arange(n) % 4 != 0, 'text': torch.ones(n, dtype=torch.bool)}
    return x, masks


def test_round_trip_fp32_exact_and_fp16_within_its_precision(tmp_path):
    x, masks = features()
    for dtype, tol in (('float32', 0.0), ('float16', 2e-3)):
        store = write_feature_store(str(tmp_path / dtype), x, masks, dtype=dtype, chunk_rows=7)
        assert isinstance(store, FeatureStore) and store.num_entities == 50
        assert store.modalities == ['image', 'text'] and store.dims == {'image': 6, 'text': 4}
        for m in x:
            expect = torch.where(masks[m].view(-1, 1), x[m], torch.zeros_like(x[m]))
            got = store.get_tensor(m, 'x', index=None)
            assert got.dtype == torch.float32
            torch.testing.assert_close(got, expect, rtol=tol, atol=tol)
            assert torch.equal(store.get_tensor(m, 'mask', index=None), masks[m])
            index = torch.tensor([3, 0, 49, 3])
            torch.testing.assert_close(store.get_tensor(m, 'x', index=index), expect[index],
                                       rtol=tol, atol=tol)
            assert torch.equal(store[m, 'mask', index], masks[m][index])
            for index in (None, torch.tensor([3, 0, 49, 3]), torch.arange(5, 9)):
                raw = store.stored_rows(m, index)  # as stored (float16): the same values
                assert raw.dtype == getattr(torch, dtype)
                assert torch.equal(raw.float(), store.get_tensor(m, 'x', index=index))
    with pytest.raises(KeyError, match="no modality 'audio'"):
        store.stored_rows('audio')
    assert store.get_tensor_size('image', 'x') == (50, 6)
    assert sorted((a.group_name, a.attr_name) for a in store.get_all_tensor_attrs()) == [
        ('image', 'mask'), ('image', 'x'), ('text', 'mask'), ('text', 'x')]
    # fp16 rows take half the bytes of fp32 ones
    assert os.path.getsize(tmp_path / 'float16' / 'image.npy') < \
        0.6 * os.path.getsize(tmp_path / 'float32' / 'image.npy')


def test_default_masks_read_only_and_bad_input(tmp_path):
    x, _ = features()
    x['image'][5] = 0
    store = write_feature_store(str(tmp_path / 's'), x)
    assert not bool(store['image', 'mask', torch.tensor([5])])
    with pytest.raises(ValueError, match='read-only'):
        store.put_tensor(torch.zeros(50, 6), 'image', 'x', index=None)
    with pytest.raises(ValueError, match='holds a feature store'):
        FeatureStoreWriter(str(tmp_path / 's'), 50)
    with pytest.raises(ValueError, match='not a feature store'):
        DiskFeatureStore(str(tmp_path))
    writer = FeatureStoreWriter(str(tmp_path / 'bad'), 10, dtype='float32')
    with pytest.raises(ValueError, match=r'rows 5...: expected \[k, 3\]'):
        writer.write('image', [np.ones((5, 3)), np.ones((5, 4))])
    with pytest.raises(ValueError, match='row 12 is not finite'):
        rows = np.ones((15, 3))
        rows[12, 1] = np.nan
        FeatureStoreWriter(str(tmp_path / 'nan'), 15).write('image', [rows])
    with pytest.raises(ValueError, match='9 rows written, 10 expected'):
        writer.write('text', [np.ones((9, 2))])
    with pytest.raises(ValueError, match='dtype'):
        FeatureStoreWriter(str(tmp_path / 'x'), 10, dtype='int8')


def test_a_store_whose_files_do_not_match_its_metadata_is_refused(tmp_path):
    x, masks = features()
    write_feature_store(str(tmp_path / 's'), x, masks)
    meta = json.loads((tmp_path / 's' / 'features.json').read_text())
    meta['num_entities'] = 51
    (tmp_path / 's' / 'features.json').write_text(json.dumps(meta))
    with pytest.raises(ValueError, match='do not match'):
        DiskFeatureStore(str(tmp_path / 's'))


WRITE = """
import os, resource, sys
import numpy as np
from native_pyg.data.feature_store import FeatureStoreWriter
def write(root, rows, dim=1024, chunk=2048):
    def chunks():
        for s in range(0, rows, chunk):
            yield np.full((min(chunk, rows - s), dim), 0.5, dtype=np.float32)
    writer = FeatureStoreWriter(root, rows, dtype='float32')
    writer.write('image', chunks(), dim=dim)
    writer.close()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
small = write(os.path.join(sys.argv[1], 'small'), 2000)
print(small, write(os.path.join(sys.argv[1], 'big'), 20000))
"""


def test_the_writer_memory_stays_bounded_on_a_store_larger_than_it(tmp_path):
    """About 80 MB of rows written in 8 MB chunks: the process's peak memory
    grows by far less than the store over writing one 10x smaller first."""
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    out = subprocess.run([sys.executable, '-c', WRITE, str(tmp_path)], capture_output=True,
                         text=True, env=env, check=True)
    small, big = map(int, out.stdout.strip().splitlines()[-1].split())
    size = os.path.getsize(tmp_path / 'big' / 'image.npy')
    assert size > 80e6
    # holding the modality would add the whole 80 MB; the allocator may keep a
    # couple of 8 MB chunk buffers (about 17 MB measured on a busy machine)
    assert big - small < 0.3 * size, (small, big, size)


def test_a_store_cut_short_is_named_never_read_as_garbage(tmp_path):
    # issue 39: rows past the end were returned uninitialised (a non-finite loss)
    import errno
    import os
    x = {'image': torch.randn(64, 8)}
    store = write_feature_store(str(tmp_path / 's'), x, dtype='float32')
    path = tmp_path / 's' / 'image.npy'
    size = path.stat().st_size
    os.truncate(path, size - 20 * 8 * 4)  # while the store is open: the last 20 rows go
    for index in (None, torch.arange(40, 64), torch.tensor([1, 50]), torch.tensor([3, 30, 63])):
        with pytest.raises(OSError) as e:
            store.get_tensor('image', 'x', index=index)
        assert e.value.errno == errno.EIO and e.value.filename == str(path)
        assert 'ends before row ' in str(e.value) and 'cut short' in str(e.value)
    assert torch.equal(store.get_tensor('image', 'x', index=torch.arange(0, 10)), x['image'][:10])
    with pytest.raises(ValueError, match='image.npy: shorter than its header says'):
        DiskFeatureStore(str(tmp_path / 's'))  # opened again: said at once
