"""native_pyg/cli/train.py: ``native-pyg train`` sets up its process (the
global generator's seed, deterministic algorithms) right before it builds the
trainer. Its outputs, resuming and errors are in test_cli.py and
test_interruptions.py."""
import pytest
import torch

import native_pyg.training as training
from native_pyg.cli import main

TINY = ['--set', 'model.hidden_channels=8', '--set', 'training.num_negatives=4',
        '--set', 'training.batch_size=4096',
        '--set', 'training.progress=false', '--epochs', '1', '--quiet']


@pytest.fixture
def trainers_see(monkeypatch):
    """What the process looks like whenever a trainer is built."""
    seen = []

    class Recording(training.Trainer):
        def __init__(self, *args, **kwargs):
            seen.append({'seed': torch.initial_seed(), 'threads': torch.get_num_threads(),
                         'deterministic': torch.are_deterministic_algorithms_enabled()})
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(training, 'Trainer', Recording)
    threads = torch.get_num_threads()
    yield seen
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(threads)


def test_the_trainer_is_built_in_a_seeded_process(trainers_see, tmp_path):
    torch.manual_seed(12345)
    assert main(['train', '--out', str(tmp_path / 'a'), '--set', 'training.seed=5', '--threads',
                 '2', *TINY]) == 0
    assert trainers_see == [{'seed': 5, 'threads': 2, 'deterministic': False}]


def test_deterministic_is_one_thread_and_deterministic_algorithms(trainers_see, tmp_path):
    assert main(['train', '--out', str(tmp_path / 'a'), '--deterministic', '--threads', '2',
                 *TINY]) == 0
    assert trainers_see == [{'seed': 0, 'threads': 1, 'deterministic': True}]
