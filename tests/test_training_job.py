"""native_pyg/training_job.py: one run config trained into one folder, as
``native-pyg train`` runs it: the process set up right before the trainer is
built, the folder checked before any data loads, and the metrics written and
returned. The command's outputs, resuming and errors are in
tests/cli/test_cli.py and tests/cli/test_interruptions.py."""
import json
import os

import pytest
import torch

import native_pyg.training_job as training_job
from native_pyg.cli import main
from native_pyg.config import RunConfig
from native_pyg.training.runs import RunDirectoryError
from native_pyg.training_job import JobError, TrainingJob, run_training_job

TINY = ['--set', 'model.hidden_channels=8', '--set', 'training.num_negatives=4',
        '--set', 'training.batch_size=4096',
        '--set', 'training.progress=false', '--epochs', '1', '--quiet']
TINY_SETS = ['model.hidden_channels=8', 'training.num_negatives=4', 'training.batch_size=4096',
             'training.progress=false', 'training.epochs=1']


@pytest.fixture
def trainers_see(monkeypatch):
    """What the process looks like whenever the job builds a trainer."""
    seen = []

    class Recording(training_job.Trainer):
        def __init__(self, *args, **kwargs):
            seen.append({'seed': torch.initial_seed(), 'threads': torch.get_num_threads(),
                         'deterministic': torch.are_deterministic_algorithms_enabled()})
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(training_job, 'Trainer', Recording)
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


def test_a_script_runs_the_job_and_gets_the_metrics_file(tmp_path, capsys):
    out = str(tmp_path / 'run')
    metrics = run_training_job(TrainingJob(RunConfig().override(TINY_SETS), out, quiet=True))
    with open(os.path.join(out, 'metrics.json')) as f:
        assert json.load(f) == metrics
    assert metrics['epochs'] == 1 and set(metrics['test']['both']) >= {'mrr', 'hits@10'}
    assert 'training NativE on synthetic' in capsys.readouterr().out


def test_the_folder_is_checked_before_any_data_loads(tmp_path, monkeypatch):
    def refuse(run):
        raise AssertionError('the data loaded before the folder was checked')
    monkeypatch.setattr(training_job, 'load_data', refuse)
    held = tmp_path / 'held'
    held.mkdir()
    (held / 'last.pt').write_bytes(b'')
    run = RunConfig().override(TINY_SETS)
    with pytest.raises(RunDirectoryError, match='already holds a run'):
        run_training_job(TrainingJob(run, str(held)))
    with pytest.raises(JobError, match='resume=True: no checkpoint at'):
        run_training_job(TrainingJob(run, str(tmp_path / 'new'), resume=True))
    assert not (tmp_path / 'new').exists()  # made for the run, left empty: removed again
    a_file = tmp_path / 'a-file'
    a_file.write_text('')
    with pytest.raises(RunDirectoryError, match='out .*a-file: exists and is a file'):
        run_training_job(TrainingJob(run, str(a_file)))


def test_a_user_error_is_one_job_error_and_leaves_no_empty_folder(tmp_path):
    run = RunConfig().override(TINY_SETS + ['model.modalities=[audio]'])
    with pytest.raises(JobError, match=r"model.modalities: \['audio'\] not in the dataset"):
        run_training_job(TrainingJob(run, str(tmp_path / 'out')))
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('sets, message', [
    (['model.table=sharded', 'training.table_optimizer=rowwise_adagrad'],
     r'^model.table=sharded: run under torchrun with 2 or more processes, e.g. torchrun '),
    (['model.table=sharding'], r"model.table: must be one of dense, sharded, got 'sharding'"),
])
def test_a_sharded_table_outside_torchrun_is_one_line(tmp_path, sets, message):
    with pytest.raises((JobError, ValueError), match=message):
        run_training_job(TrainingJob(RunConfig().override(TINY_SETS).override(sets),
                                     str(tmp_path / 'out')))
    assert not (tmp_path / 'out').exists()


def test_shard_table_sets_the_table_and_its_optimizer(tmp_path, capsys):
    assert main(['train', '--shard-table', '--epochs', '1', '--out', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'model.table=sharded: run under torchrun' in err[0], err
    from native_pyg.cli import build_parser
    from native_pyg.cli.options import train_job
    args = build_parser().parse_args(['train', '--shard-table', '--out', str(tmp_path / 'o')])
    args.argv = []
    run = train_job(args).run
    assert (run.model.table, run.training.table_optimizer) == ('sharded', 'rowwise_adagrad')
