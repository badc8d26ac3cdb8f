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
