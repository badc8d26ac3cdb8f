"""--threads / training.threads, and the run saying what it trains (issue 39)."""
import json
import os

import pytest
import torch

from native_pyg.cli import main
from native_pyg.training import threads as threads_mod
from native_pyg.training.threads import apply_threads, choose_threads

TINY = ['--set', 'model.hidden_channels=8', '--set', 'training.num_negatives=4',
        '--set', 'training.progress=false', '--epochs', '1', '--quiet']


@pytest.fixture
def machine(monkeypatch):
    """A machine of ``cores`` cores with one-minute load ``load``."""
    def make(cores, load):
        monkeypatch.setattr(threads_mod, 'usable_cores', lambda: cores)
        monkeypatch.setattr(threads_mod, 'load_average', lambda: load)
        monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
        monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    return make


def test_auto_takes_the_cores_the_load_leaves_free(machine, monkeypatch):
    machine(4, 0.1)
    assert choose_threads() == (4, None)
    machine(4, 1.2)
    assert choose_threads() == (3, None)
    machine(2, 1.9)  # the other work holds every core: one thread, no warning needed
    assert choose_threads() == (1, None)
    machine(2, 0.0)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    assert choose_threads() == (1, None)
    machine(8, 0.0)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '4')  # torchrun's 4 processes share the 8 cores
    assert choose_threads() == (2, None)


def test_asking_for_threads_on_busy_cores_warns_in_one_line(machine):
    machine(2, 2.4)
    threads, warning = choose_threads(2)
    assert threads == 2 and '\n' not in warning
    assert 'load average is 2.4 on 2 cores' in warning and '--threads 1' in warning
    machine(2, 0.2)
    assert choose_threads(2) == (2, None)


def test_apply_sets_torchs_threads(machine):
    before = torch.get_num_threads()
    try:
        machine(8, 0.0)
        assert apply_threads(3)[0] == 3 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_cli_threads_and_the_first_line(tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        assert main(['train', '--dataset', 'synthetic', '--threads', '1', '--out',
                     str(tmp_path / 'r'), *TINY]) == 0
    finally:
        torch.set_num_threads(before)
    first = capsys.readouterr().out.splitlines()[0]
    assert first == ('training NativE on synthetic: modalities image, text, numeric, fusion '
                     'redaf, CoMAT on, 1 CPU thread')
    trained = json.loads((tmp_path / 'r' / 'metrics.json').read_text())['trained']
    assert trained == {'model': 'NativE', 'modalities': ['image', 'text', 'numeric'],
                       'fusion': 'redaf', 'comat': True, 'threads': 1}
    assert main(['train', '--dataset', 'synthetic', '--threads', '0', '--out',
                 str(tmp_path / 'r0'), *TINY]) == 2
    assert 'training.threads: must be null or >= 1' in capsys.readouterr().err


def test_no_silent_downgrade_to_structure_only(tiny_raw, tmp_path, capsys):
    dataset = str(tiny_raw.parent)  # OpenKE files, no feature file
    out = tmp_path / 'r'
    assert main(['train', '--dataset', dataset, '--out', str(out), *TINY]) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if 'error' in l]
    assert len(err) == 1 and "no feature modality, but the config asks for fusion 'redaf' " \
        "and CoMAT" in err[0] and '--allow-missing-modalities' in err[0]
    assert not out.exists()
    for run in ('a', 'b'):  # allowed: a warning on every run, not only the first
        with pytest.warns(UserWarning, match='training structure only'):
            assert main(['train', '--dataset', dataset, '--allow-missing-modalities', '--out',
                         str(tmp_path / run), *TINY]) == 0
        captured = capsys.readouterr()
        assert captured.out.splitlines()[0].startswith(
            'training RotatE (structure only) on tiny: modalities none, fusion none, CoMAT off')
        trained = json.loads((tmp_path / run / 'metrics.json').read_text())['trained']
        assert trained['modalities'] == [] and trained['comat'] is False
    # structure only by choice: nothing to warn about
    assert main(['train', '--dataset', dataset, '--modalities', 'none', '--out',
                 str(tmp_path / 'c'), *TINY]) == 0
    assert 'structure only' not in capsys.readouterr().err
    assert os.path.exists(tmp_path / 'c' / 'metrics.json')
