import warnings

import pytest
import torch

from native_pyg.data import modalities, split_triples, validate_mmkg
from native_pyg.datasets import MMKGDataset, SyntheticMMKG, WildKGC
from tests.conftest import fill_wildkgc_root, needs_shared

# the released counts: entities, relations, train, valid, test
COUNTS = {
    'DB15K': (12842, 279, 79222, 9904, 9902),
    'MKG-W': (15000, 169, 34196, 4276, 4274),
    'MKG-Y': (15000, 28, 21310, 2665, 2663),
    'TIVA': (11858, 16, 20071, 2000, 2000),
    'KVC16K': (16015, 4, 180190, 22523, 22525),
}


@needs_shared
@pytest.mark.parametrize('name', sorted(COUNTS))
def test_wildkgc_loads_real_counts(tmp_path, name):
    fill_wildkgc_root(tmp_path, name)
    with pytest.warns(UserWarning, match='absent'):
        ds = WildKGC(str(tmp_path), name, log=False)
    data = ds[0]
    validate_mmkg(data)
    n, r, tr, va, te = COUNTS[name]
    assert data['entity'].num_nodes == n and data.num_relations == r
    assert [split_triples(data, s).size(0) for s in ('train', 'valid', 'test')] == [tr, va, te]
    assert ds.modalities == []  # no feature files placed
    assert (tmp_path / name / 'processed').is_dir()
    q = ds.quirks
    if name == 'DB15K':
        assert q['duplicates']['valid'] == 2423 and q['leakage']['valid'] == 8719
    if name == 'TIVA':
        assert q['duplicates']['train'] == 8419 and q['leakage']['test'] == 1666
    if name == 'KVC16K':
        assert q['duplicates']['train'] == 171
    if name in ('MKG-W', 'MKG-Y'):
        for split in ('valid', 'test'):
            assert 250 <= q['unseen_entity_rows'][split] <= 450


@needs_shared
def test_wildkgc_cleaning_options(tmp_path):
    fill_wildkgc_root(tmp_path, 'TIVA')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ds = WildKGC(str(tmp_path), 'TIVA', dedupe=True, remove_leakage=True, log=False)
    q = ds.quirks
    assert sum(q['duplicates'].values()) == 0
    assert sum(q['leakage'].values()) == 0 and q['test_in_valid']['test'] == 0
    assert split_triples(ds[0], 'train').size(0) == 20071 - 8419


@needs_shared
def test_wildkgc_checksum_mismatch_names_file(tmp_path):
    fill_wildkgc_root(tmp_path, 'MKG-Y')
    path = tmp_path / 'MKG-Y' / 'raw' / 'test2id.txt'
    path.chmod(0o644)
    path.write_text(path.read_text().replace('\n0 ', '\n1 ', 1))
    with pytest.raises(ValueError, match='test2id.txt: SHA-256 .* --no-verify'):
        WildKGC(str(tmp_path), 'MKG-Y', log=False)


@needs_shared
def test_wildkgc_line_endings_are_explained_and_no_verify_reads_them(tmp_path):
    fill_wildkgc_root(tmp_path, 'MKG-Y')
    path = tmp_path / 'MKG-Y' / 'raw' / 'valid2id.txt'
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b'\n', b' \r\n'))
    with pytest.raises(ValueError, match='valid2id.txt: differs from the released file only in '
                                         'line endings'):
        WildKGC(str(tmp_path), 'MKG-Y', log=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = WildKGC(str(tmp_path), 'MKG-Y', verify=False, log=False)[0]
    assert split_triples(data, 'valid').size(0) == COUNTS['MKG-Y'][3]


@needs_shared
def test_wildkgc_cache_follows_its_inputs_and_rechecks_them(tmp_path):
    fill_wildkgc_root(tmp_path, 'MKG-Y')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        WildKGC(str(tmp_path), 'MKG-Y', log=False)
    path = tmp_path / 'MKG-Y' / 'raw' / 'test2id.txt'
    path.chmod(0o644)
    path.write_text(path.read_text().replace('\n0 ', '\n1 ', 1))
    with pytest.raises(ValueError, match='test2id.txt: SHA-256'):  # not the stale cache
        WildKGC(str(tmp_path), 'MKG-Y', log=False)


def test_wildkgc_unknown_name(tmp_path):
    with pytest.raises(ValueError, match='unknown WildKGC dataset'):
        WildKGC(str(tmp_path), 'FB15K')


def test_mmkg_dataset_features_cache_and_reload(tiny_raw, monkeypatch):
    x = torch.randn(6, 4)
    x[5] = 0
    torch.save(x, tiny_raw / 'tiny-visual.pth')
    with pytest.warns(UserWarning, match='duplicate rows'):
        ds = MMKGDataset(str(tiny_raw.parent), log=False)
    data = ds[0]
    assert ds.modalities == ['image']
    assert data['image'].mask.tolist() == [True] * 5 + [False]
    assert torch.equal(data['image'].x[:5], x[:5])
    assert data['entity'].name[2] == 'e2' and data.relation_names == ['likes', 'knows']
    assert ds.quirks['duplicates'] == {'train': 1, 'valid': 0, 'test': 0}
    assert ds.quirks['leakage']['valid'] == 1

    # The processed cache is reused: process() must not run again ...
    calls = []
    monkeypatch.setattr(MMKGDataset, 'process', lambda self: calls.append(1))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        MMKGDataset(str(tiny_raw.parent), log=False)
        assert calls == []
        # ... unless forced (the stubbed process leaves the old cache to load)
        MMKGDataset(str(tiny_raw.parent), force_reload=True, log=False)
    assert calls == [1]


def test_mmkg_dataset_new_feature_file_reprocesses(tiny_raw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert MMKGDataset(str(tiny_raw.parent), log=False).modalities == []
        torch.save(torch.randn(6, 2), tiny_raw / 'tiny-audio.pth')
        assert MMKGDataset(str(tiny_raw.parent), log=False).modalities == ['audio']


def test_mmkg_dataset_cache_follows_replaced_inputs(tiny_raw):
    import os
    torch.save(torch.ones(6, 2), tiny_raw / 'tiny-audio.pth')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        first = MMKGDataset(str(tiny_raw.parent), log=False)[0]
        torch.save(torch.full((6, 2), 2.0), tiny_raw / 'tiny-audio.pth')
        second = MMKGDataset(str(tiny_raw.parent), log=False)[0]
        assert float(first['audio'].x[0, 0]) == 1.0 and float(second['audio'].x[0, 0]) == 2.0
        # a triple file edited in place (same size, different content and mtime)
        path = tiny_raw / 'test2id.txt'
        path.write_text(path.read_text().replace('1 3 1', '1 4 1'))
        os.utime(path, ns=(1, 1))
        third = MMKGDataset(str(tiny_raw.parent), log=False)[0]
    assert split_triples(third, 'test').tolist() == [[1, 1, 4]]
    caches = [f for f in os.listdir(tiny_raw.parent / 'processed') if f.startswith('mmkg_')]
    assert len(caches) == 1  # the outdated ones are removed


def test_mmkg_dataset_strips_a_byte_order_mark(tiny_raw):
    for f in ('entity2id.txt', 'train2id.txt'):
        path = tiny_raw / f
        path.write_bytes(b'\xef\xbb\xbf' + path.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = MMKGDataset(str(tiny_raw.parent), log=False)[0]
    assert data['entity'].name[0] == 'e0' and data['entity'].num_nodes == 6


@pytest.mark.parametrize('values, message', [
    (torch.zeros(6, 3), 'no entity has this modality'),
    (torch.full((6, 3), 5e7), r'6 rows hold values beyond 1e\+06 \(largest \|x\| = 5e\+07\)'),
])
def test_mmkg_dataset_warns_once_about_implausible_features(tiny_raw, values, message):
    torch.save(values, tiny_raw / 'tiny-numeric.pth')
    with pytest.warns(UserWarning, match=message):
        MMKGDataset(str(tiny_raw.parent), log=False)
    with warnings.catch_warnings(record=True) as seen:  # cached: not warned again
        warnings.simplefilter('always')
        MMKGDataset(str(tiny_raw.parent), log=False)
    assert not [w for w in seen if 'tiny-numeric.pth' in str(w.message)]


def test_mmkg_dataset_bad_feature_file(tiny_raw):
    torch.save(torch.randn(7, 2), tiny_raw / 'tiny-textual.pth')
    with pytest.raises(ValueError, match='tiny-textual.pth: has 7 rows'):
        MMKGDataset(str(tiny_raw.parent), log=False)


def test_mmkg_dataset_missing_raw(tmp_path):
    with pytest.raises(FileNotFoundError, match='entity2id.txt'):
        MMKGDataset(str(tmp_path / 'nothing'), log=False)


def test_synthetic_determinism_and_shape(tmp_path):
    a, b = SyntheticMMKG(seed=3)[0], SyntheticMMKG(seed=3)[0]
    c = SyntheticMMKG(seed=4)[0]
    validate_mmkg(a)
    for s in ('train', 'valid', 'test'):
        assert torch.equal(split_triples(a, s), split_triples(b, s))
    assert not torch.equal(split_triples(a, 'train'), split_triples(c, 'train'))
    assert len(modalities(a)) >= 3
    for m in modalities(a):
        assert torch.equal(a[m].x, b[m].x) and torch.equal(a[m].mask, b[m].mask)
    # imbalanced: coverage differs per modality and some entities have none
    cover = [a[m].mask.float().mean().item() for m in modalities(a)]
    assert max(cover) - min(cover) > 0.2
    has_any = torch.stack([a[m].mask for m in modalities(a)]).any(0)
    assert 0 < int((~has_any).sum()) < a['entity'].num_nodes // 5
    # valid/test touch entities unseen in train
    train = split_triples(a, 'train')
    seen = torch.zeros(a['entity'].num_nodes, dtype=torch.bool)
    seen[train[:, 0]] = seen[train[:, 2]] = True
    test = split_triples(a, 'test')
    assert int((~(seen[test[:, 0]] & seen[test[:, 2]])).sum()) > 0
    # cached under a root and identical to the in-memory one
    d = SyntheticMMKG(str(tmp_path), seed=3)[0]
    assert torch.equal(split_triples(d, 'test'), split_triples(a, 'test'))
    assert torch.equal(d['image'].x, a['image'].x)


@needs_shared
def test_wildkgc_downloads_missing_files_and_checks_them(tmp_path, monkeypatch):
    """No network here: the download function is replaced by a copy from the
    reference files, and the URLs it is asked for are checked."""
    import shutil
    import native_pyg.datasets.wildkgc as wk
    from tests.conftest import SHARED
    urls = []

    def fake_download(url, folder, log=True):
        urls.append(url)
        name = url.rsplit('/', 1)[1]
        shutil.copy(SHARED / 'Kuai16K' / name, f'{folder}/{name}')
        return f'{folder}/{name}'

    monkeypatch.setattr(wk, 'download_url', fake_download)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ds = WildKGC(str(tmp_path), 'KVC16K', log=False)
    assert len(urls) == 5
    assert all(u.startswith('https://raw.githubusercontent.com/zjukg/NATIVE/') and
               '/benchmarks/Kuai16K/' in u for u in urls)
    assert ds[0]['entity'].num_nodes == 16015

    def corrupt_download(url, folder, log=True):
        path = fake_download(url, folder, log)
        if path.endswith('relation2id.txt'):
            with open(path, 'a') as f:
                f.write('\n')
        return path

    monkeypatch.setattr(wk, 'download_url', corrupt_download)
    with pytest.raises(ValueError, match='relation2id.txt: differs from the released file only'):
        WildKGC(str(tmp_path / 'other'), 'KVC16K', log=False)


def test_wildkgc_without_network_is_one_clear_error(tmp_path, monkeypatch):
    import urllib.error
    import native_pyg.datasets.wildkgc as wk

    def offline(url, folder, log=True):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr(wk, 'download_url', offline)
    with pytest.raises(ConnectionError, match=r'cannot download https://.*entity2id.txt '
                                              r'\(.*name resolution\); without network access, '
                                              r'copy the OpenKE files'):
        WildKGC(str(tmp_path), 'MKG-Y', log=False)


def test_dataset_warnings_are_shown_once_per_processed_cache(tiny_raw):
    import warnings
    with pytest.warns(UserWarning, match='duplicate rows'):
        MMKGDataset(str(tiny_raw.parent), log=False)
    with warnings.catch_warnings(record=True) as caught:  # the same cache, read again
        warnings.simplefilter('always')
        ds = MMKGDataset(str(tiny_raw.parent), log=False)
    assert not [w for w in caught if 'duplicate rows' in str(w.message)]
    assert ds.quirks['duplicates']['train'] == 1  # still reported where asked for
