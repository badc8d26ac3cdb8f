"""A user's own MMKG in a folder: FolderMMKG, find_layout and load_dataset(path)."""
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from native_pyg.data import MMKGFormatError, fingerprint, split_triples, validate_mmkg
from native_pyg.datasets import (FolderMMKG, MMKGDataset, find_layout, is_dataset_path,
                                 load_dataset)
from tests.conftest import REPO, write_openke

EXAMPLE = REPO / 'examples' / 'my_mmkg'
NAMES = ['alice', 'bob', 'carol dean', 'dave', 'erin']
RELS = ['knows', 'works with']
TRIPLES = {'train': [(0, 0, 1), (1, 1, 2), (2, 0, 3), (3, 1, 0), (1, 0, 3)],
           'valid': [(0, 1, 2)], 'test': [(4, 0, 1)]}  # erin: only in test


def write_tsv(folder: Path, triples=TRIPLES, names=NAMES, rels=RELS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in triples.items():
        (folder / f'{split}.tsv').write_text(
            ''.join(f'{names[h]}\t{rels[r]}\t{names[t]}\n' for h, r, t in rows))
    return folder


def features(n=5, d=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32) + 2


def load(folder, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # unseen-entity and other data warnings
        return FolderMMKG(str(folder), log=False, **kwargs)


def test_shipped_example_loads_with_expected_counts(tmp_path):
    folder = tmp_path / 'my_mmkg'
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns('processed'))
    total = sum(f.stat().st_size for f in (EXAMPLE / 'features').iterdir())
    assert total < 50_000
    ds = load(folder)
    data = validate_mmkg(ds[0])
    assert data.name == 'my_mmkg' and ds.layout.manifest == 'mmkg.yaml'
    assert data['entity'].num_nodes == 40 and data.num_relations == 7
    assert [split_triples(data, s).size(0) for s in ('train', 'valid', 'test')] == [73, 12, 10]
    assert ds.modalities == ['image', 'numeric']
    assert int(data['image'].mask.sum()) == 32 and data['image'].x.shape == (40, 16)
    assert int(data['numeric'].mask.sum()) == 16 and data['numeric'].x.shape == (40, 2)
    names = data['entity'].name
    assert names[:2] == ['France', 'Germany']  # entities.txt order
    paris = names.index('Paris')
    assert torch.allclose(data['numeric'].x[paris], torch.tensor([48.86 / 90, 2.35 / 180]))
    assert not bool(data['image'].mask[names.index('French')])
    assert sum(ds.quirks['unseen_entity_rows'].values()) == 0
    assert 'capital of' in data.relation_names


def test_shipped_features_are_what_the_script_writes(tmp_path):
    folder = tmp_path / 'my_mmkg'
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns('processed', 'features'))
    (folder / 'features').mkdir()
    import runpy
    runpy.run_path(str(folder / 'make_features.py'), run_name='__main__')
    for f in os.listdir(EXAMPLE / 'features'):
        assert (folder / 'features' / f).read_bytes() == (EXAMPLE / 'features' / f).read_bytes()


def test_openke_and_tsv_folders_give_the_same_graph(tmp_path):
    x = features()
    tsv = write_tsv(tmp_path / 'tsv')
    (tsv / 'features').mkdir()
    np.save(tsv / 'features' / 'image.npy', x)
    openke = tmp_path / 'openke'
    write_openke(openke, NAMES, RELS, TRIPLES)
    (openke / 'features').mkdir()
    torch.save(torch.from_numpy(x), openke / 'features' / 'image.pt')
    a, b = load(tsv), load(openke)
    assert a.layout.format == 'tsv' and b.layout.format == 'openke'
    assert a.layout.manifest is None and b.layout.manifest is None
    da, db = a[0], b[0]
    assert fingerprint(da) == fingerprint(db)
    assert da['entity'].name == db['entity'].name == NAMES  # first-seen order = id order
    assert da.relation_names == db.relation_names == RELS
    assert a.quirks['unseen_entity_rows'] == {'valid': 0, 'test': 1}  # kept, as MMKGDataset


def test_tsv_entity_list_orders_the_feature_rows(tmp_path):
    folder = write_tsv(tmp_path / 'kg')
    order = list(reversed(NAMES)) + ['frank']  # an entity in no triple is kept
    (folder / 'entities.txt').write_text('\n'.join(order) + '\n')
    (folder / 'features').mkdir()
    x = features(n=6)
    np.save(folder / 'features' / 'text.npy', x)
    data = load(folder)[0]
    assert data['entity'].name == order
    assert torch.equal(data['text'].x, torch.from_numpy(x))
    bob = order.index('bob')
    assert split_triples(data, 'train')[0].tolist() == [order.index('alice'), 0, bob]


def test_manifest_with_masks_and_dtype(tmp_path):
    folder = write_tsv(tmp_path / 'kg', triples={k: v for k, v in TRIPLES.items()})
    (folder / 'data').mkdir()
    for s in ('train', 'valid', 'test'):
        (folder / f'{s}.tsv').rename(folder / 'data' / f'{s}.tsv')
    np.save(folder / 'img.npy', features())
    np.save(folder / 'img_mask.npy', np.array([1, 0, 1, 1, 0], dtype=np.int64))
    torch.save(torch.ones(5, 2), folder / 'audio.pt')
    (folder / 'audio_has.txt').write_text('bob\n\nerin\n')
    (folder / 'mmkg.yaml').write_text(
        "name: people\nsplits:\n  train: data/train.tsv\n  valid: data/valid.tsv\n"
        "  test: data/test.tsv\nfeatures:\n  image:\n    file: img.npy\n    mask: img_mask.npy\n"
        "    dtype: float16\n  audio:\n    file: audio.pt\n    mask: audio_has.txt\n")
    ds = load(folder)
    data = ds[0]
    assert data.name == 'people' and ds.modalities == ['image', 'audio']
    assert data['image'].mask.tolist() == [True, False, True, True, False]
    assert data['image'].x.dtype == torch.float16
    assert bool((data['image'].x[1] == 0).all())  # outside the mask: zeroed
    assert data['audio'].mask.tolist() == [False, True, False, False, True]
    assert 'mask audio_has.txt' in ds.layout.describe()


def test_convention_features_with_masks(tmp_path):
    folder = write_tsv(tmp_path / 'kg')
    f = folder / 'features'
    f.mkdir()
    x = features()
    x[2] = 0  # all-zero: missing without a mask ...
    np.save(f / 'video.npy', x)
    np.save(f / 'image.npy', x)
    np.save(f / 'image.mask.npy', np.ones(5, dtype=bool))  # ... present with one
    (f / 'notes.md').write_text('ignored')
    data = load(folder)[0]
    assert data['video'].mask.tolist() == [True, True, False, True, True]
    assert bool(data['image'].mask.all())


def _bad(tmp_path, case):
    """Builds a folder with one broken input; returns (folder, file, line)."""
    folder = write_tsv(tmp_path / 'kg')
    feat = folder / 'features'
    feat.mkdir()
    if case == 'columns':
        (folder / 'train.tsv').write_text('alice\tknows\tbob\nbob\tknows\n')
        return folder, 'train.tsv', 2
    if case == 'spaces':
        (folder / 'valid.tsv').write_text('alice\tknows\tbob\n\nalice knows bob\n')
        return folder, 'valid.tsv', 3
    if case == 'tsv_utf8':
        (folder / 'test.tsv').write_bytes(b'alice\tknows\tbob\nZo\xe9\tknows\tbob\n')
        return folder, 'test.tsv', 2
    if case == 'unknown_entity':
        (folder / 'entities.txt').write_text('\n'.join(NAMES[:4]) + '\n')
        return folder, 'test.tsv', 1
    if case == 'entity_listed_twice':
        (folder / 'entities.txt').write_text('alice\nbob\nalice\n')
        return folder, 'entities.txt', 3
    if case == 'mask_unknown_entity':
        np.save(feat / 'image.npy', features())
        (feat / 'image.mask.txt').write_text('alice\nzed\n')
        return folder, 'image.mask.txt', 2
    if case == 'feature_rows':
        np.save(feat / 'image.npy', features(n=4))
        return folder, 'image.npy', None
    if case == 'mask_values':
        np.save(feat / 'image.npy', features())
        np.save(feat / 'image.mask.npy', np.array([0, 1, 2, 1, 1]))
        return folder, 'image.mask.npy', None
    if case == 'mask_alone':
        np.save(feat / 'image.mask.npy', np.ones(5, dtype=bool))
        return folder, 'image.mask.npy', None
    if case == 'object_array':
        np.save(feat / 'image.npy', np.array([[1, 'a']], dtype=object), allow_pickle=True)
        return folder, 'image.npy', None
    shutil.rmtree(folder)
    folder.mkdir()
    if case == 'openke_ids':
        write_openke(folder, NAMES, RELS, TRIPLES)
        (folder / 'train2id.txt').write_text('2\n0 1 0\n1 x 0\n')
        return folder, 'train2id.txt', 3
    if case == 'openke_utf8':
        write_openke(folder, NAMES, RELS, TRIPLES)
        (folder / 'entity2id.txt').write_bytes(b'2\na\t0\nZo\xe9 b\t1\n')
        return folder, 'entity2id.txt', 3
    if case == 'openke_incomplete':
        write_openke(folder, NAMES, RELS, TRIPLES)
        os.remove(folder / 'valid2id.txt')
        return folder, folder.name, None
    if case == 'nothing':
        (folder / 'readme.md').write_text('x')
        return folder, folder.name, None
    write_tsv(folder)
    manifests = {
        'manifest_key': ("name: x\nspilts:\n  train: train.tsv\n", 2),
        'manifest_nested_key': ("features:\n  image:\n    file: f.npy\n    maks: m.npy\n", 4),
        'manifest_missing_file': ("splits:\n  train: nope.tsv\n  valid: valid.tsv\n"
                                  "  test: test.tsv\n", 2),
        'manifest_missing_split': ("splits:\n  train: train.tsv\n  valid: valid.tsv\n", 1),
        'manifest_yaml': ("splits: [train.tsv\nfeatures: {}\n", 2),
        'manifest_dtype': ("features:\n  image:\n    file: f.npy\n    dtype: int8\n", 4),
        'manifest_modality': ("features:\n  entity: f.npy\n", 2),
        'manifest_twice': ("name: a\nformat: tsv\nname: b\n", 3),
        'manifest_format': ("format: csv\n", 1),
    }
    np.save(folder / 'f.npy', features())
    text, line = manifests[case]
    (folder / 'mmkg.yaml').write_text(text)
    return folder, 'mmkg.yaml', line


BAD = {
    'columns': "expected 3 tab-separated fields 'head<TAB>relation<TAB>tail', got 2",
    'spaces': 'separated by tabs, this line has none',
    'tsv_utf8': r'not UTF-8 text \(byte 0xe9 at column 3\)',
    'unknown_entity': r"unknown entity 'erin' \(not in entities.txt\)",
    'entity_listed_twice': r"'alice' is listed twice \(first on line 1\)",
    'mask_unknown_entity': r"unknown entity 'zed' \(not among the 5 entities",
    'feature_rows': 'has 4 rows but the dataset has 5 entities',
    'mask_values': r'row 2: mask value 2 is not True/False or 1/0',
    'mask_alone': r"a mask for 'image', but there is no features/image.npy",
    'object_array': 'cannot be read as a .npy array with allow_pickle=False',
    'openke_ids': "non-integer field in '1 x 0'",
    'openke_utf8': r'not UTF-8 text \(byte 0xe9 at column 3\)',
    'openke_incomplete': 'OpenKE files incomplete: missing valid2id.txt',
    'nothing': 'no MMKG found: expected mmkg.yaml, OpenKE files',
    'manifest_key': r"spilts: unknown key 'spilts' \(expected one of: name, description",
    'manifest_nested_key': r"features.image.maks: unknown key 'maks' \(expected one of: file, "
                           r"mask, dtype, images, image_dir, text, numeric, model, weights, "
                           r"pool, normalize, batch_size\)",
    'manifest_missing_file': "splits.train: file 'nope.tsv' not found",
    'manifest_missing_split': 'splits: missing test',
    'manifest_yaml': 'not valid YAML',
    'manifest_dtype': "features.image.dtype: expected one of float16, bfloat16, float32, "
                      "float64, got 'int8'",
    'manifest_modality': "features.entity: 'entity' cannot name a modality",
    'manifest_twice': r'name is given twice \(first on line 1\)',
    'manifest_format': "format: expected 'openke' or 'tsv', got 'csv'",
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_inputs_are_one_line_naming_file_and_line(tmp_path, case):
    folder, fname, line = _bad(tmp_path, case)
    with pytest.raises(ValueError, match=BAD[case]) as e:
        load_dataset(str(folder), log=False)
    msg = str(e.value)
    assert isinstance(e.value, MMKGFormatError)
    assert '\n' not in msg
    head = msg.split(': ')[0]
    assert fname in head
    if line is not None:
        assert head.endswith(f'{fname}:{line}'), msg


def test_cache_is_reused_and_follows_the_inputs(tmp_path, monkeypatch):
    folder = write_tsv(tmp_path / 'kg')
    calls = []
    process = FolderMMKG.process
    monkeypatch.setattr(FolderMMKG, 'process', lambda self: (calls.append(1), process(self)))
    load(folder)
    load(folder)
    assert len(calls) == 1 and (folder / 'processed').is_dir()
    # a split edited in place: same size, other content and mtime
    path = folder / 'test.tsv'
    path.write_text(path.read_text().replace('erin', 'dave'))
    os.utime(path, ns=(1, 1))
    data = load(folder)[0]
    assert len(calls) == 2 and data['entity'].num_nodes == 4
    # a feature file added, then replaced; a manifest added
    (folder / 'features').mkdir()
    np.save(folder / 'features' / 'image.npy', np.ones((4, 2), dtype=np.float32))
    assert load(folder).modalities == ['image'] and len(calls) == 3
    np.save(folder / 'features' / 'image.npy', np.full((4, 2), 3, dtype=np.float32))
    os.utime(folder / 'features' / 'image.npy', ns=(2, 2))
    assert float(load(folder)[0]['image'].x[0, 0]) == 3.0 and len(calls) == 4
    (folder / 'mmkg.yaml').write_text('name: renamed\nfeatures: {}\n')
    ds = load(folder)
    assert ds[0].name == 'renamed' and ds.modalities == [] and len(calls) == 5
    load(folder)
    assert len(calls) == 5
    caches = [f for f in os.listdir(folder / 'processed') if f.startswith('mmkg_')]
    assert len(caches) == 2  # one per option set (modalities); outdated ones removed


def test_load_dataset_accepts_paths(tmp_path, monkeypatch):
    folder = write_tsv(tmp_path / 'kg')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert isinstance(load_dataset(str(folder), log=False), FolderMMKG)
        monkeypatch.chdir(tmp_path)
        assert load_dataset('kg', log=False)[0]['entity'].num_nodes == 5  # an existing dir
        assert load_dataset('./kg', root='ignored', log=False).layout.name == 'kg'
        monkeypatch.setenv('HOME', str(tmp_path))
        assert load_dataset('~/kg', log=False).root == str(folder)
        (folder / 'mmkg.yaml').write_text('name: by_manifest\n')
        assert load_dataset('kg/mmkg.yaml', log=False)[0].name == 'by_manifest'
        # a folder laid out as MMKGDataset (OpenKE files in raw/)
        write_openke(tmp_path / 'old' / 'raw', NAMES, RELS, TRIPLES)
        ds = load_dataset('./old', dedupe=True, log=False)
        assert type(ds) is MMKGDataset and ds[0]['entity'].num_nodes == 5
    assert is_dataset_path('./DB15K') and not is_dataset_path('DB15K')
    (tmp_path / 'DB15K').mkdir()
    assert not is_dataset_path('DB15K')  # the built-in name wins over a folder
    with pytest.raises(ValueError, match='nope: no such dataset folder'):
        load_dataset('./nope')
    with pytest.raises(ValueError, match='verify: checks the released WildKGC files'):
        load_dataset('./kg', verify=False)
    with pytest.raises(ValueError, match=r"unknown dataset 'kgx'.*path of a dataset folder"):
        load_dataset('kgx')


def test_log_prints_what_was_found(tmp_path, capsys):
    folder = write_tsv(tmp_path / 'kg')
    (folder / 'features').mkdir()
    np.save(folder / 'features' / 'image.npy', features())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        FolderMMKG(str(folder))
    err = capsys.readouterr().err
    assert 'kg (' in err and 'found by file names' in err
    assert 'triples: TSV of names: train.tsv, valid.tsv, test.tsv' in err
    assert 'features: image features/image.npy' in err
    assert find_layout(str(folder)).describe() in err
    with warnings.catch_warnings():  # read from its cache: nothing before a command's output
        warnings.simplefilter('ignore')
        FolderMMKG(str(folder))
    assert capsys.readouterr().err == ''  # issue 39: 4 lines before predict's error


def test_unseen_entities_are_kept_and_warned(tmp_path):
    folder = write_tsv(tmp_path / 'kg')
    with pytest.warns(UserWarning) as record:
        FolderMMKG(str(folder), log=False)
    message = ' '.join(str(w.message) for w in record)
    assert 'rows touching entities unseen in train (test: 1) are kept and scored from' in message
    assert '--dedupe' not in message  # those flags do not remove such rows (issue 39)


def test_pipeline_loads_a_folder(tmp_path):
    from native_pyg.pipeline import load_data
    from native_pyg.training import RunConfig
    folder = write_tsv(tmp_path / 'kg')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = load_data(RunConfig(dataset=str(folder)))
    assert data['entity'].num_nodes == 5
    (folder / 'train.tsv').write_text('a\tb\n')
    with pytest.raises(ValueError, match='train.tsv:1: expected 3 tab-separated'):
        load_data(RunConfig(dataset=str(folder)))
