"""An image modality: images decoded in batches, pooled per entity, bad files
skipped and counted."""
import json
import os

import numpy as np
import pytest

from native_pyg.features.image_encoders import load_image_encoder
from native_pyg.features.images import ImageRows, list_image_folder, pool_modes
from tests.helpers.images import write_image


@pytest.fixture(scope='module')
def encoder():
    return load_image_encoder('resnet18')


@pytest.fixture
def three(tmp_path):
    return [write_image(tmp_path / name, seed)
            for seed, name in enumerate(['a.png', 'b.jpg', 'c.png'])]


def test_pooling_of_three_images(three, encoder):
    # entity 0 has all three; entities 1-3 one each, to compare with
    images = {0: three, 1: [three[0]], 2: [three[1]], 3: [three[2]]}
    singles = ImageRows(images, encoder).rows(np.array([1, 2, 3])).rows
    want = {'mean': singles.mean(0), 'max': singles.max(0), 'first': singles[0]}
    for pool in pool_modes:
        chunk = ImageRows(images, encoder, pool=pool).rows(np.array([0]))
        np.testing.assert_allclose(chunk.rows[0], want[pool], rtol=1e-5, atol=1e-5)
        assert chunk.counts.tolist() == [1 if pool == 'first' else 3]
        assert chunk.mask.tolist() == [True] and chunk.rows.dtype == np.float32
    assert not np.allclose(want['mean'], want['max'])  # the modes really differ
    with pytest.raises(ValueError, match='pool'):
        ImageRows(images, encoder, pool='sum')


def test_bad_files_are_skipped_and_counted(tmp_path, three, encoder):
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    whole = open(three[0], 'rb').read()
    truncated = tmp_path / 'truncated.png'
    truncated.write_bytes(whole[:len(whole) // 2])
    missing = str(tmp_path / 'missing.png')
    images = {0: [str(corrupt)], 1: [three[1], str(corrupt)], 2: [str(truncated), missing],
              3: [], 5: [three[1]]}
    for pool in pool_modes:
        chunk = ImageRows(images, encoder, pool=pool).rows(np.array([0, 1, 2, 3, 4, 5]))
        assert chunk.mask.tolist() == [False, True, False, False, False, True]
        assert chunk.counts.tolist() == [0, 1, 0, 0, 0, 1]
        assert not chunk.rows[[0, 2, 3, 4]].any()
        np.testing.assert_allclose(chunk.rows[1], chunk.rows[5], rtol=1e-6, atol=1e-6)
        # 'first' stops at entity 1's good image, before its corrupt one
        want = {'unreadable': 3 if pool != 'first' else 2, 'missing': 1}
        assert chunk.skipped == want


class ChannelMeans:
    """A fast stand-in encoder (batching and pooling do not depend on the
    model): each image's per-channel means after the real transform."""
    dim = 3

    def __init__(self, encoder):
        self.transform = encoder.transform

    def encode(self, batch):
        return batch.mean(dim=(2, 3))

    def settings(self):
        return {'model': 'channel means'}


def test_small_batches_give_the_same_rows(tmp_path, encoder):
    paths = [write_image(tmp_path / f'{i}.png', 10 + i) for i in range(5)]
    images = {0: paths[:3], 1: paths[3:4], 2: paths[4:]}  # entity 0 spans two batches of 2
    fast = ChannelMeans(encoder)
    for pool in pool_modes:
        big = ImageRows(images, fast, pool=pool, batch_size=32).rows(np.arange(3))
        small = ImageRows(images, fast, pool=pool, batch_size=2).rows(np.arange(3))
        np.testing.assert_allclose(small.rows, big.rows, rtol=1e-5, atol=1e-5)
        assert small.counts.tolist() == big.counts.tolist()


def test_batches_hold_at_most_batch_size_images(tmp_path, encoder):
    paths = [write_image(tmp_path / f'{i}.png', 20 + i) for i in range(5)]
    sizes = []

    class Recording:
        dim, transform = encoder.dim, encoder.transform

        def encode(self, batch):
            sizes.append(len(batch))
            return encoder.encode(batch)

        def settings(self):
            return encoder.settings()

    ImageRows({0: paths[:3], 1: paths[3:]}, Recording(), batch_size=2).rows(np.arange(2))
    assert sizes == [2, 2, 1]


def test_entities_in_the_order_asked_and_relative_paths(tmp_path, three, encoder):
    names = [os.path.basename(p) for p in three]
    source = ImageRows({7: [names[0]], 9: [names[2]]}, encoder, root=str(tmp_path))
    forward = source.rows(np.array([7, 9]))
    backward = source.rows(np.array([9, 7]))
    assert forward.mask.all() and forward.skipped == {}
    np.testing.assert_allclose(backward.rows, forward.rows[::-1], rtol=1e-5, atol=1e-5)
    assert source.dim == 512


def test_settings_are_json_and_follow_the_files(tmp_path, three, encoder):
    images = {0: three[:2], 1: three[2:]}
    settings = ImageRows(images, encoder).settings()
    assert json.loads(json.dumps(settings)) == settings
    assert settings['pool'] == 'mean' and settings['encoder'] == encoder.settings()
    assert settings['images']['entities'] == 2 and settings['images']['files'] == 3
    assert ImageRows(images, encoder).settings() == settings
    assert ImageRows(images, encoder, pool='max').settings() != settings
    assert ImageRows({0: three[:2]}, encoder).settings() != settings

    stat = os.stat(three[2])  # the same file name, other pixels
    write_image(three[2], 99)
    os.utime(three[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert ImageRows(images, encoder).settings()['images'] != settings['images']


def test_list_image_folder(tmp_path):
    for name in ('Lake_Bled', 'Libreville', 'Stranger'):
        (tmp_path / name).mkdir()
    write_image(tmp_path / 'Lake_Bled' / 'b.JPG', 1)
    write_image(tmp_path / 'Lake_Bled' / 'a.png', 2)
    (tmp_path / 'Lake_Bled' / 'notes.txt').write_text('not an image')
    write_image(tmp_path / 'Stranger' / 'x.png', 3)
    (tmp_path / 'loose.png').write_bytes(b'')  # not in a sub-folder: ignored
    index = {'Lake_Bled': 4, 'Libreville': 0, 'Paris': 1}
    images, unknown = list_image_folder(str(tmp_path), index)
    assert images == {4: [os.path.join('Lake_Bled', 'a.png'), os.path.join('Lake_Bled', 'b.JPG')]}
    assert unknown == ['Stranger']


def test_a_relative_image_folder_resolves_through_root(tmp_path, monkeypatch, encoder):
    (tmp_path / 'images' / 'Paris').mkdir(parents=True)
    write_image(tmp_path / 'images' / 'Paris' / 'a.png', 5)
    monkeypatch.chdir(tmp_path)
    images, _ = list_image_folder('images', {'Paris': 0})
    chunk = ImageRows(images, encoder, root='images').rows(np.array([0]))
    assert chunk.mask.tolist() == [True] and chunk.skipped == {}
