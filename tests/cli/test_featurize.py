"""native_pyg/cli/featurize.py and raw inputs named by a folder's manifest:
``native-pyg featurize`` writes a modality's files beside the dataset, and
``train --dataset FOLDER/manifest.yaml`` featurizes raw inputs on first use,
keeps them while nothing changes and featurizes again when an input does."""
import json
import os
import shutil

import numpy as np
import pytest

from native_pyg.cli import main
from native_pyg.datasets import load_dataset
from tests.conftest import REPO
from tests.helpers.images import write_image

EXAMPLE = REPO / 'examples' / 'my_mmkg'
ATTRIBUTES = '''# entity<TAB>attribute<TAB>value
Paris\tpopulation\t2100000
Berlin\tpopulation\t3600000
Rome\tpopulation\t2800000
Paris\tfounded\t0250
Berlin\tfounded\t1237-10-28
Seine\tlength_km\t777
'''


@pytest.fixture
def folder(tmp_path):
    """A copy of examples/my_mmkg with raw inputs beside it."""
    kg = tmp_path / 'kg'
    shutil.copytree(EXAMPLE, kg, ignore=shutil.ignore_patterns('processed', 'raw'))
    (kg / 'attributes.tsv').write_text(ATTRIBUTES)
    (kg / 'pictures').mkdir()
    for i, name in enumerate(['Paris', 'Paris2', 'Rome', 'Seine']):
        write_image(kg / 'pictures' / f'{name}.png', i)
    (kg / 'pictures' / 'Berlin.png').write_bytes(b'not an image at all')
    (kg / 'images.tsv').write_text('Paris\tpictures/Paris.png\nParis\tpictures/Paris2.png\n'
                                   'Rome\tpictures/Rome.png\nSeine\tpictures/Seine.png\n'
                                   'Berlin\tpictures/Berlin.png\nAtlantis\tpictures/Rome.png\n')
    (kg / 'descriptions.tsv').write_text('Paris\tThe capital of France.\n'
                                         'Danube\tA long river through Vienna.\n')
    return kg


def _names(folder):
    return list(load_dataset(str(folder), log=False)[0]['entity'].name)


def test_numeric_attributes_become_files_beside_the_dataset(folder, capsys):
    assert main(['featurize', '--dataset', str(folder), '--numeric',
                 str(folder / 'attributes.tsv'), '--modality', 'facts', '--quiet']) == 0
    out = capsys.readouterr().out
    assert 'facts: 4 of 40 entities have rows' in out
    assert '{file: features/facts.npy, mask: features/facts.mask.npy}' in out
    names = _names(folder)
    rows = np.load(folder / 'features' / 'facts.npy')
    mask = np.load(folder / 'features' / 'facts.mask.npy')
    assert rows.dtype == np.float16 and rows.shape[0] == 40
    assert sorted(np.array(names)[mask]) == ['Berlin', 'Paris', 'Rome', 'Seine']
    record = json.loads((folder / 'features' / 'facts.json').read_text())
    assert record['present'] == 4


def test_the_folders_own_feature_file_is_never_replaced(folder, capsys):
    before = (folder / 'features' / 'numeric.npy').read_bytes()
    assert main(['featurize', '--dataset', str(folder), '--numeric',
                 str(folder / 'attributes.tsv'), '--quiet']) == 2
    assert 'numeric.npy: exists and was not written by featurize' in capsys.readouterr().err
    assert (folder / 'features' / 'numeric.npy').read_bytes() == before


def test_images_with_a_broken_file_and_a_limit(folder, capsys):
    out = folder / 'out'
    assert main(['featurize', '--dataset', str(folder), '--images', str(folder / 'images.tsv'),
                 '--model', 'resnet18', '--weights', 'none', '--out', str(out),
                 '--batch-size', '2', '--quiet']) == 0
    printed = capsys.readouterr().out
    assert "1 row names an entity not in the dataset (e.g. 'Atlantis')" in printed
    assert 'image: 3 of 40 entities have rows, 4 inputs pooled; skipped: 1 unreadable' in printed
    names = _names(folder)
    counts = np.load(out / 'image.count.npy')
    assert counts[names.index('Paris')] == 2 and counts[names.index('Berlin')] == 0
    assert np.load(out / 'image.npy').shape == (40, 512)
    limited = folder / 'limited'
    assert main(['featurize', '--dataset', str(folder), '--images', str(folder / 'images.tsv'),
                 '--model', 'resnet18', '--weights', 'none', '--out', str(limited),
                 '--limit', str(names.index('Rome')), '--quiet']) == 0
    mask = np.load(limited / 'image.mask.npy')
    assert mask[names.index('Paris')] and not mask[names.index('Rome')]


@pytest.mark.parametrize('argv, message', [
    (['--numeric', '{kg}/nothing.tsv'], 'nothing.tsv: file not found'),
    (['--numeric', '{kg}/attributes.tsv', '--limit', '0'], '--limit 0: expected a positive'),
    (['--dataset', 'synthetic', '--numeric', '{kg}/attributes.tsv'],
     '--out: needed for the dataset synthetic'),
])
def test_bad_arguments_are_one_line(folder, capsys, argv, message):
    argv = [a.replace('{kg}', str(folder)) for a in argv]
    if '--dataset' not in argv:
        argv = ['--dataset', str(folder), *argv]
    assert main(['featurize', *argv, '--quiet']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'native-pyg: error: {err[0].split("error: ", 1)[1]}']  # before any work
    assert message in err[0]


def _manifest(folder, attributes='attributes.tsv'):
    manifest = folder / 'raw.yaml'
    manifest.write_text(f'''name: my_mmkg_raw
format: tsv
entities: entities.txt
splits: {{train: train.tsv, valid: valid.tsv, test: test.tsv}}
features:
  photo: {{images: images.tsv, model: resnet18, weights: none, pool: max}}
  facts: {{numeric: {attributes}, normalize: rank}}
''')
    return manifest


def test_a_manifest_with_raw_inputs_trains_end_to_end(folder, tmp_path, capsys):
    manifest = _manifest(folder)
    out = tmp_path / 'run'
    assert main(['train', '--dataset', str(manifest), '--out', str(out), '--epochs', '2',
                 '--set', 'model.hidden_channels=16', '--set', 'training.progress=false',
                 '--quiet']) == 0
    printed = capsys.readouterr().out
    assert 'modalities photo, facts' in printed or 'modalities facts, photo' in printed
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['trained']['modalities'] and 0 < metrics['test']['both']['mrr'] <= 1
    made = folder / 'processed' / 'raw_features' / 'my_mmkg_raw'
    assert (made / 'photo.npy').exists() and (made / 'facts.json').exists()
    # kept while nothing changes: the next command reads the same files
    stamp = os.stat(made / 'photo.npy').st_mtime_ns
    assert main(['stats', '--dataset', str(manifest)]) == 0
    report = capsys.readouterr().out
    assert 'photo' in report and 'facts' in report
    assert os.stat(made / 'photo.npy').st_mtime_ns == stamp
    # an input that changes is featurized again
    (folder / 'attributes.tsv').write_text(ATTRIBUTES + 'Vienna\tpopulation\t1900000\n')
    data = load_dataset(str(manifest), log=False)[0]
    names = list(data['entity'].name)
    assert np.load(made / 'facts.mask.npy')[names.index('Vienna')]
    assert os.stat(made / 'photo.npy').st_mtime_ns == stamp  # the images did not change
    assert data['facts'].x.shape[0] == 40
    # an image replaced under the same name is featurized again
    rome = np.load(made / 'photo.npy')[names.index('Rome')]
    write_image(folder / 'pictures' / 'Rome.png', 99)
    load_dataset(str(manifest), log=False)
    assert not np.array_equal(np.load(made / 'photo.npy')[names.index('Rome')], rome)


@pytest.mark.parametrize('entry, message', [
    ('{images: images.tsv, file: features/image.npy}', "raw inputs (images) and 'file' together"),
    ('{file: features/image.npy, model: resnet18}', 'an option of raw inputs'),
    ('{images: nothing.tsv}', "file 'nothing.tsv' not found"),
    ('{image_dir: nowhere}', "folder 'nowhere' not found"),
    ('{numeric: attributes.tsv, normalize: log}', "normalize 'log': expected one of"),
])
def test_a_bad_raw_entry_names_the_manifest_line(folder, entry, message):
    from native_pyg.data import MMKGFormatError
    manifest = folder / 'bad.yaml'
    manifest.write_text(f'format: tsv\nentities: entities.txt\nfeatures:\n  x: {entry}\n')
    with pytest.raises(MMKGFormatError, match=r'bad.yaml:4: features\.x.*' + message.replace(
            '(', r'\(').replace(')', r'\)')):
        load_dataset(str(manifest), log=False)


def test_memory_stays_bounded_over_many_images(tmp_path):
    """Peak memory of featurizing 300 images is that of 30, give or take a
    few batches: decoded images are never held for more than one batch
    (300 decoded 224x224 images alone would be 180 MB)."""
    import subprocess
    import sys
    kg = tmp_path / 'kg'
    shutil.copytree(EXAMPLE, kg, ignore=shutil.ignore_patterns('processed', 'raw'))
    names = [line for line in (kg / 'entities.txt').read_text().splitlines() if line]
    (kg / 'img').mkdir()
    for i in range(300):
        write_image(kg / 'img' / f'{i}.png', i)
    peaks = {}
    for count in (30, 300):
        table = kg / f'images{count}.tsv'
        table.write_text(''.join(f'{names[i % len(names)]}\timg/{i}.png\n' for i in range(count)))
        # VmHWM: this program's own peak (ru_maxrss would carry the parent's over exec)
        script = ('import sys; from native_pyg.cli import main; code = main(sys.argv[1:]); '
                  'print([l.split()[1] for l in open("/proc/self/status") '
                  'if l.startswith("VmHWM")][0]); sys.exit(code)')
        done = subprocess.run([sys.executable, '-c', script, 'featurize', '--dataset', str(kg),
                               '--images', str(table), '--model', 'mobilenet_v3_small', '--weights',
                               'none', '--batch-size', '8', '--out', str(tmp_path / f'o{count}'),
                               '--threads', '1', '--quiet'],
                              capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stderr
        peaks[count] = int(done.stdout.strip().splitlines()[-1]) / 1024  # MiB
    assert peaks[300] - peaks[30] < 60, peaks
