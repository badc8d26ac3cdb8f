import json
import os
import tracemalloc

import numpy as np
import pytest
import torch

from native_pyg.data import REL, modalities, split_triples, validate_mmkg
from native_pyg.data.feature_store import DiskFeatureStore
from native_pyg.datasets.large_synthetic import (generate_large_mmkg, large_mmkg_entities,
                                                 load_large_mmkg)

N = 2000
SMALL = dict(num_entities=N, num_relations=40, image_dim=16, text_dim=8, valid_triples=150,
             test_triples=150, chunk_rows=256, progress=False)


def generate(root, **kwargs):
    return generate_large_mmkg(str(root), **{**SMALL, **kwargs})


def files(root):
    """``{relative path: bytes}`` of every file under ``root``."""
    out = {}
    for d, _, names in os.walk(root):
        for f in names:
            path = os.path.join(d, f)
            out[os.path.relpath(path, root)] = open(path, 'rb').read()
    return out


def triples(root, split):
    return np.load(os.path.join(root, f'{split}.npy'))


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    return generate(tmp_path_factory.mktemp('large') / 'g')


def test_same_arguments_give_identical_files_whatever_the_chunk_size(graph, tmp_path):
    again = files(generate(tmp_path / 'a', chunk_rows=97))  # chunks across blocks
    ref = files(graph)
    assert set(ref) == {'meta.json', 'train.npy', 'valid.npy', 'test.npy',
                        'features/features.json', 'features/image.npy',
                        'features/image.mask.npy', 'features/text.npy',
                        'features/text.mask.npy'}
    assert again == ref
    assert files(generate(tmp_path / 'b', chunk_rows=5000)) == ref  # one chunk
    other = files(generate(tmp_path / 'c', seed=1))
    for name in ref:
        if name != 'features/features.json':
            assert other[name] != ref[name], name


def test_a_complete_graph_is_reused_and_other_arguments_refused(tmp_path):
    root = generate(tmp_path / 'g')
    mtimes = {p: os.stat(os.path.join(root, p)).st_mtime_ns for p in files(root)}
    assert generate(tmp_path / 'g', chunk_rows=1000) == root  # chunk_rows changes no file
    assert {p: os.stat(os.path.join(root, p)).st_mtime_ns for p in files(root)} == mtimes
    with pytest.raises(ValueError, match='missing_rate') as e:
        generate(tmp_path / 'g', missing_rate=0.5)
    assert str(root) in str(e.value) and '\n' not in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ['g']  # no temporary directory left behind


def test_an_incomplete_directory_is_regenerated_and_foreign_files_kept(tmp_path, graph):
    root = tmp_path / 'g'
    root.mkdir()
    (root / 'train.npy').write_bytes(b'half written')  # an interrupted run's leftovers
    generate(root)
    assert files(root) == files(graph)
    other = tmp_path / 'mine'
    other.mkdir()
    (other / 'notes.txt').write_text('keep')
    with pytest.raises(ValueError, match='other files'):
        generate(other)
    assert (other / 'notes.txt').read_text() == 'keep'
    assert sorted(os.listdir(tmp_path)) == ['g', 'mine']


def test_bad_arguments_are_refused(tmp_path):
    for bad in (dict(num_entities=1), dict(missing_rate=1.0), dict(dtype='int8'),
                dict(chunk_rows=0), dict(triples_per_entity=0)):
        with pytest.raises(ValueError):
            generate(tmp_path / 'x', **bad)
    with pytest.raises(ValueError, match='distinct triples'):
        generate(tmp_path / 'x', num_entities=3, num_relations=1)
    assert not os.listdir(tmp_path)


def test_loads_as_an_mmkg_with_features_on_disk(graph):
    data, store = load_large_mmkg(graph)
    validate_mmkg(data)
    meta = json.load(open(os.path.join(graph, 'meta.json')))
    assert data['entity'].num_nodes == N and data.num_relations == 40
    assert len(data['entity'].name) == N and data['entity'].name[7] == 'entity_7'
    assert data.relation_names[3] == 'relation_3'
    assert [split_triples(data, s).size(0) for s in ('train', 'valid', 'test')] == \
        [round(6.4 * N), 150, 150] == [meta['counts'][s] for s in ('train', 'valid', 'test')]
    for split in ('train', 'valid', 'test'):
        assert torch.equal(split_triples(data, split), torch.from_numpy(triples(graph, split)))
    assert modalities(data) == []  # no feature tensors in the graph
    assert data[REL].edge_index.dtype == torch.long
    assert isinstance(store, DiskFeatureStore)
    assert store.num_entities == N and store.dims == {'image': 16, 'text': 8}
    assert store.storage_dtype == {'image': 'float16', 'text': 'float16'}
    with pytest.raises(ValueError, match='not a complete'):
        load_large_mmkg(os.path.dirname(graph))


def test_splits_are_distinct_and_covered_by_train(graph):
    tr, va, te = (triples(graph, s) for s in ('train', 'valid', 'test'))
    keys = {s: set(map(tuple, t.tolist())) for s, t in (('train', tr), ('valid', va), ('test', te))}
    assert len(keys['train']) == len(tr) and len(keys['valid']) == len(va)
    assert len(keys['test']) == len(te)
    assert not keys['train'] & keys['valid'] and not keys['train'] & keys['test']
    assert not keys['valid'] & keys['test']
    seen = set(tr[:, 0]) | set(tr[:, 2])
    for t in (va, te):
        assert set(t[:, 0]) <= seen and set(t[:, 2]) <= seen
        assert set(t[:, 1]) <= set(tr[:, 1])
    assert (tr[:, 0] != tr[:, 2]).all()  # no self-loops
    assert (tr.min() >= 0 and tr[:, [0, 2]].max() < N and tr[:, 1].max() < 40)


def test_degrees_are_heavy_tailed(graph):
    tr = triples(graph, 'train')
    degree = np.bincount(tr[:, 0], minlength=N) + np.bincount(tr[:, 2], minlength=N)
    assert degree.max() > 20 * np.median(degree)
    top = np.sort(degree)[::-1]
    assert top[:N // 100].sum() > 0.1 * degree.sum()  # the top 1% hold over 10% of the ends


def test_relation_patterns(graph):
    meta = json.load(open(os.path.join(graph, 'meta.json')))
    kinds, inverse_of = meta['relations']['kind'], meta['relations']['inverse_of']
    assert {'plain', 'symmetric', 'inverse'} <= set(kinds)
    tr = triples(graph, 'train')
    facts = set(map(tuple, tr.tolist()))
    for r, kind in enumerate(kinds):
        mine = tr[tr[:, 1] == r]
        if kind == 'symmetric' and len(mine) >= 20:
            mirrored = np.mean([(t, r, h) in facts for h, _, t in mine.tolist()])
            assert mirrored > 0.9, (r, mirrored)
        if kind == 'inverse' and len(mine) >= 20:
            base = inverse_of[r]
            mirrored = np.mean([(t, base, h) in facts for h, _, t in mine.tolist()])
            assert mirrored > 0.9, (r, mirrored)
    # (head, relation) pins its tails to a cell: few distinct tails per relation
    # and head type, far fewer than the entities
    for r in np.unique(tr[:, 1]):
        mine = tr[tr[:, 1] == r]
        if kinds[r] == 'plain' and len(mine) > 200:
            assert len(np.unique(mine[:, 2])) < 0.5 * N


def test_missing_rate_per_modality(graph):
    store = DiskFeatureStore(os.path.join(graph, 'features'))
    meta = json.load(open(os.path.join(graph, 'meta.json')))
    masks = {}
    for m in ('image', 'text'):
        x, mask = store.get_tensor(m, 'x', index=None), store.get_tensor(m, 'mask', index=None)
        masks[m] = mask
        assert abs(1 - mask.float().mean().item() - 0.3) < 0.04, m
        assert (x[~mask] == 0).all() and (x[mask].abs().sum(1) > 0).all()
        assert meta['modalities'][m]['present'] == int(mask.sum())
    both_missing = (~masks['image'] & ~masks['text']).float().mean().item()
    assert abs(both_missing - 0.09) < 0.03  # independent per modality


def test_features_follow_the_structure(graph):
    store = DiskFeatureStore(os.path.join(graph, 'features'))
    x = store.get_tensor('image', 'x', index=None).numpy()
    mask = store.get_tensor('image', 'mask', index=None).numpy()
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-6)
    # tails of one (head, relation) lie in one cell: similar features
    tr = triples(graph, 'train')
    tr = tr[mask[tr[:, 2]]]
    order = np.lexsort((tr[:, 2], tr[:, 1], tr[:, 0]))
    tr = tr[order]
    same = (tr[1:, 0] == tr[:-1, 0]) & (tr[1:, 1] == tr[:-1, 1])
    a, b = tr[:-1, 2][same], tr[1:, 2][same]
    assert len(a) > 200
    rng = np.random.default_rng(0)
    present = np.flatnonzero(mask)
    ra, rb = rng.choice(present, 5000), rng.choice(present, 5000)
    linked = (x[a] * x[b]).sum(1).mean()
    random = (x[ra] * x[rb]).sum(1).mean()
    assert linked > random + 0.2, (linked, random)
    # a nearest-centroid probe reads the entity type off the features
    kind = large_mmkg_entities(graph, present)['type']
    feats = x[present]
    half = len(present) // 2
    types = np.unique(kind)
    centroids = np.stack([feats[:half][kind[:half] == t].mean(0) for t in types])
    guess = types[np.argmax(feats[half:] @ centroids.T, 1)]
    chance = np.bincount(kind).max() / len(kind)
    assert (guess == kind[half:]).mean() > max(0.6, 2 * chance)  # 16 noisy dims only


def test_store_rows_are_the_generators(graph):
    store = DiskFeatureStore(os.path.join(graph, 'features'))
    ids = np.array([0, 1, 1023, 1024, 1500, N - 1, 5])
    truth = large_mmkg_entities(graph, ids)
    for m in ('image', 'text'):
        rows = store.get_tensor(m, 'x', index=torch.from_numpy(ids)).numpy()
        assert np.array_equal(rows, truth[m]), m
        assert np.array_equal(store.get_tensor(m, 'mask', index=torch.from_numpy(ids)).numpy(),
                              truth[f'{m}_mask'])
    assert truth['latent'].shape == (len(ids), 32)
    with pytest.raises(ValueError, match='entity ids'):
        large_mmkg_entities(graph, [N])


def test_the_writer_never_holds_a_modality(tmp_path):
    """Traced peak memory (numpy buffers included) stays far below the
    image file: one chunk of rows and a few blocks, never a modality."""
    peaks = {}
    for dim in (16, 1024):
        tracemalloc.start()
        try:
            root = generate_large_mmkg(str(tmp_path / f'd{dim}'), 40000, num_relations=20,
                                       triples_per_entity=1.0, image_dim=dim, text_dim=8,
                                       valid_triples=50, test_triples=50, chunk_rows=2048,
                                       progress=False)
            peaks[dim] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    size = os.path.getsize(os.path.join(root, 'features', 'image.npy'))
    assert size > 80e6
    assert peaks[1024] > peaks[16] + 5e6  # the feature buffers are traced ...
    assert peaks[1024] < 0.4 * size, (peaks, size)  # ... and far smaller than the modality
