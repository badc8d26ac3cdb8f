"""native-pyg convert-features: a user's feature files to a disk store."""
import numpy as np
import torch

from native_pyg.cli import main
from native_pyg.data.feature_store import DiskFeatureStore


def test_npy_pt_and_chunk_directories_become_one_store(tmp_path, capsys):
    image = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    image[7] = 0  # a missing row
    np.save(tmp_path / 'image.npy', image)
    (tmp_path / 'text').mkdir()
    text = torch.randn(300, 8)
    torch.save(text[:120].clone(), tmp_path / 'text' / 'a.pt')
    torch.save(text[120:].clone(), tmp_path / 'text' / 'b.pt')
    out = tmp_path / 'store'
    assert main(['convert-features', f'image={tmp_path / "image.npy"}',
                 f'text={tmp_path / "text"}', '--out', str(out), '--chunk-rows', '64',
                 '--dtype', 'float32', '--quiet']) == 0
    assert 'DiskFeatureStore' in capsys.readouterr().out
    store = DiskFeatureStore(str(out))
    assert store.num_entities == 300 and store.dims == {'image': 16, 'text': 8}
    assert torch.equal(store.get_tensor('image', 'x', index=None), torch.from_numpy(image))
    assert torch.equal(store.get_tensor('text', 'x', index=None), text)
    assert store['image', 'mask', None].sum() == 299
    # refused in one line, exit 2: an existing store, a missing file, a bad pair, row counts
    np.save(tmp_path / 'short.npy', image[:10])
    for args in ([f'image={tmp_path / "image.npy"}', '--out', str(out)],
                 [f'image={tmp_path / "nope.npy"}', '--out', str(tmp_path / 's2')],
                 ['image', '--out', str(tmp_path / 's3')],
                 [f'image={tmp_path / "image.npy"}', f'text={tmp_path / "short.npy"}',
                  '--out', str(tmp_path / 's4')]):
        assert main(['convert-features', *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('native-pyg: error:'), err


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('native-pyg: error:'), err
    return err[0]


def test_sources_and_unrelated_files_are_never_touched(tmp_path, capsys):
    feats = tmp_path / 'feats'
    feats.mkdir()
    np.save(feats / 'image.npy', np.ones((20, 4), np.float32))
    before = (feats / 'image.npy').read_bytes()
    # the store's directory holds the source: refused, the source byte-identical
    assert main(['convert-features', f'image={feats / "image.npy"}', '--out', str(feats),
                 '--quiet']) == 2
    assert 'inside the output directory' in _one_error(capsys)
    assert (feats / 'image.npy').read_bytes() == before
    # an unrelated text.npy in --out is never replaced
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'text.npy').write_bytes(b'my own file')
    np.save(tmp_path / 't.npy', np.ones((20, 3), np.float32))
    assert main(['convert-features', f'text={tmp_path / "t.npy"}', '--out', str(mine),
                 '--quiet']) == 2
    assert 'not an empty directory' in _one_error(capsys)
    assert (mine / 'text.npy').read_bytes() == b'my own file'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['feats', 'mine', 't.npy']
    # an empty directory is fine, and nothing is left beside it
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert main(['convert-features', f'text={tmp_path / "t.npy"}', '--out', str(empty),
                 '--quiet']) == 0
    assert DiskFeatureStore(str(empty)).dims == {'text': 3}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]


def test_masks_are_taken_and_checked(tmp_path, capsys):
    rows = np.random.default_rng(1).standard_normal((30, 5)).astype(np.float32)
    rows[3] = 0  # all zero but present: the mask says so
    present = np.ones(30, bool)
    present[[0, 7]] = False
    np.save(tmp_path / 'img.npy', rows)
    np.save(tmp_path / 'img.mask.npy', present)
    out = tmp_path / 'store'
    assert main(['convert-features', f'image={tmp_path / "img.npy"}',
                 f'image.mask={tmp_path / "img.mask.npy"}', '--out', str(out),
                 '--chunk-rows', '4', '--dtype', 'float32', '--quiet']) == 0
    store = DiskFeatureStore(str(out))
    assert torch.equal(store['image', 'mask', None], torch.from_numpy(present))
    x = store.get_tensor('image', 'x', index=None)
    assert torch.equal(x[3], torch.zeros(5)) and torch.equal(x[5], torch.from_numpy(rows[5]))
    assert torch.equal(x[0], torch.zeros(5))  # a missing row is stored as zeros
    np.save(tmp_path / 'short.mask.npy', present[:10])
    np.save(tmp_path / 'bad.mask.npy', np.full(30, 2))
    for i, (arg, words) in enumerate(((f'image.mask={tmp_path / "short.mask.npy"}', '30 entries'),
                                      (f'image.mask={tmp_path / "bad.mask.npy"}', '0/1'),
                                      (f'text.mask={tmp_path / "img.mask.npy"}', 'no feature'),
                                      ('image.scale=x.npy', 'MODALITY.mask=PATH'))):
        assert main(['convert-features', f'image={tmp_path / "img.npy"}', arg,
                     '--out', str(tmp_path / f'o{i}'), '--quiet']) == 2
        assert words in _one_error(capsys)
        assert not (tmp_path / f'o{i}').exists()


def test_files_that_are_not_feature_matrices_are_one_line(tmp_path, capsys):
    np.save(tmp_path / 'strings.npy', np.array([['abc'] * 3] * 4))  # <U3
    np.save(tmp_path / 'empty.npy', np.zeros((50, 0), np.float32))
    torch.save(torch.eye(5).to_sparse(), tmp_path / 'sparse.pt')
    for name, words in (('strings.npy', 'dtype <U3'), ('empty.npy', '[50, 0]'),
                        ('sparse.pt', 'dense float tensor')):
        assert main(['convert-features', f'image={tmp_path / name}', '--out',
                     str(tmp_path / 'out'), '--quiet']) == 2
        assert words in _one_error(capsys)
    assert not (tmp_path / 'out').exists()
