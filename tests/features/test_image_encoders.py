"""Image encoders: torchvision models without their head, CLIP image towers,
weights files."""
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from native_pyg.features.image_encoders import import_torchvision, load_image_encoder
from native_pyg.features.images import ImageRows
from tests.helpers.images import write_image


@pytest.fixture(scope='module')
def resnet18():
    return load_image_encoder('resnet18')


def hand_encoded(net, transform, paths):
    net.eval()
    batch = torch.stack([transform(Image.open(p).convert('RGB')) for p in paths])
    with torch.no_grad():
        return net(batch).numpy()


def random_torchvision_model(name):
    torchvision = import_torchvision()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return getattr(torchvision.models, name)(weights=None)


def test_import_torchvision_declares_the_missing_ops():
    torchvision = import_torchvision()
    assert torchvision.models.resnet18 is not None
    assert hasattr(torch.ops.torchvision, 'nms') and hasattr(torch.ops.torchvision, 'qnms')
    assert import_torchvision() is torchvision  # a second call: the same module


def test_missing_torchvision_is_a_one_line_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'torchvision', None)
    with pytest.raises(ImportError) as error:
        load_image_encoder('resnet18')
    assert str(error.value) == ("image features need torchvision and Pillow: "
                                "pip install 'native_pyg[image]'")


def test_random_resnet18_rows_equal_encoding_by_hand(tmp_path, resnet18):
    torchvision = import_torchvision()
    paths = [write_image(tmp_path / f'{i}.png', i) for i in range(3)]
    chunk = ImageRows({i: [p] for i, p in enumerate(paths)}, resnet18).rows(np.arange(3))

    net = random_torchvision_model('resnet18')
    net.fc = torch.nn.Identity()
    transform = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    want = hand_encoded(net, transform, paths)
    assert resnet18.dim == 512 and chunk.rows.shape == (3, 512) and chunk.rows.dtype == np.float32
    np.testing.assert_allclose(chunk.rows, want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(chunk.rows[0], chunk.rows[1])  # the images really differ
    assert chunk.mask.all() and chunk.counts.tolist() == [1, 1, 1] and chunk.skipped == {}


def test_random_init_is_deterministic_and_leaves_the_callers_rng(tmp_path, resnet18):
    batch = torch.rand(2, 3, 64, 64)
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    other = load_image_encoder('resnet18', weights='none')
    assert torch.equal(torch.rand(3), want)
    assert torch.equal(other.encode(batch), resnet18.encode(batch))
    assert other.settings() == resnet18.settings()
    assert resnet18.settings()['weights'] == 'none'


def test_vit_b_16_without_its_heads(tmp_path):
    torchvision = import_torchvision()
    path = write_image(tmp_path / 'a.jpg', 7)
    encoder = load_image_encoder('vit_b_16')
    net = random_torchvision_model('vit_b_16')
    net.heads = torch.nn.Identity()
    want = hand_encoded(net, torchvision.models.ViT_B_16_Weights.DEFAULT.transforms(), [path])
    chunk = ImageRows({0: [path]}, encoder).rows(np.array([0]))
    assert encoder.dim == 768 and chunk.rows.shape == (1, 768)
    np.testing.assert_allclose(chunk.rows, want, rtol=1e-5, atol=1e-5)


def test_weights_file_with_or_without_the_head(tmp_path, resnet18):
    paths = [write_image(tmp_path / f'{i}.png', i) for i in range(2)]
    images = {0: [paths[0]], 1: [paths[1]]}
    want = ImageRows(images, resnet18).rows(np.arange(2)).rows
    full = random_torchvision_model('resnet18').state_dict()
    torch.save(full, tmp_path / 'full.pt')
    torch.save({k: v for k, v in full.items() if not k.startswith('fc.')}, tmp_path / 'bare.pt')
    for name in ('full.pt', 'bare.pt'):
        encoder = load_image_encoder('resnet18', weights=str(tmp_path / name))
        np.testing.assert_allclose(ImageRows(images, encoder).rows(np.arange(2)).rows, want,
                                   rtol=1e-6, atol=1e-6)

    # trained weights: other rows, and settings that name the file by its content
    changed = {k: v + 0.01 if v.is_floating_point() else v for k, v in full.items()}
    torch.save(changed, tmp_path / 'full.pt')
    encoder = load_image_encoder('resnet18', weights=str(tmp_path / 'full.pt'))
    assert not np.allclose(ImageRows(images, encoder).rows(np.arange(2)).rows, want)
    first = load_image_encoder('resnet18', weights=str(tmp_path / 'bare.pt')).settings()
    assert first['weights']['file'] == str(tmp_path / 'bare.pt')
    assert encoder.settings()['weights']['sha256'] != first['weights']['sha256']


def assert_one_line_naming(error, path):
    message = str(error.value)
    assert '\n' not in message and str(path) in message


def test_bad_weights_files_are_one_line_errors(tmp_path):
    text = tmp_path / 'notes.txt'
    text.write_text('not a state dict at all\n' * 20)
    with pytest.raises(ValueError) as error:
        load_image_encoder('resnet18', weights=str(text))
    assert_one_line_naming(error, text)

    wrong = random_torchvision_model('resnet18').state_dict()
    wrong['fc.weight'] = torch.zeros(10, 512)  # a head of another shape
    torch.save(wrong, tmp_path / 'wrong.pt')
    with pytest.raises(ValueError) as error:
        load_image_encoder('resnet18', weights=str(tmp_path / 'wrong.pt'))
    assert_one_line_naming(error, tmp_path / 'wrong.pt')

    torch.save({'layer.weight': torch.zeros(3)}, tmp_path / 'other.pt')  # another model
    with pytest.raises(ValueError, match='missing keys') as error:
        load_image_encoder('resnet18', weights=str(tmp_path / 'other.pt'))
    assert_one_line_naming(error, tmp_path / 'other.pt')

    with pytest.raises(ValueError, match='no file'):
        load_image_encoder('resnet18', weights=str(tmp_path / 'absent.pt'))


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / 'it-ran'
    path = tmp_path / 'evil.pt'
    torch.save({'fc.weight': RunsACommand(marker)}, path)
    with pytest.raises(ValueError) as error:
        load_image_encoder('resnet18', weights=str(path))
    assert_one_line_naming(error, path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.exists()


def test_unknown_model_is_a_one_line_error():
    with pytest.raises(ValueError, match='resnet50') as error:
        load_image_encoder('resnet_nope')
    assert '\n' not in str(error.value)
    with pytest.raises(ValueError, match='clip:'):
        load_image_encoder('clip:')


def test_clip_image_tower_random_init(tmp_path):
    import_torchvision()  # open_clip imports torchvision
    pytest.importorskip('open_clip')
    a = write_image(tmp_path / 'a.png', 1)
    same = write_image(tmp_path / 'same.png', 1)
    b = write_image(tmp_path / 'b.png', 2)
    encoder = load_image_encoder('clip:ViT-B-32')
    chunk = ImageRows({0: [a], 1: [same], 2: [b]}, encoder).rows(np.arange(3))
    assert encoder.dim == 512 and chunk.rows.shape == (3, 512)
    np.testing.assert_allclose(chunk.rows[0], chunk.rows[1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(chunk.rows[0], chunk.rows[2])
    assert encoder.settings()['model'] == 'clip:ViT-B-32'
    assert encoder.settings()['weights'] == 'none'
    with pytest.raises(ValueError, match='unknown CLIP architecture'):
        load_image_encoder('clip:NoSuchViT')


def test_missing_open_clip_is_a_one_line_import_error(monkeypatch):
    import_torchvision()
    monkeypatch.setitem(sys.modules, 'open_clip', None)
    with pytest.raises(ImportError) as error:
        load_image_encoder('clip:ViT-B-32')
    assert str(error.value) == ("CLIP image features need open_clip: "
                                "pip install 'native_pyg[clip]'")
