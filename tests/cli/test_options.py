"""native_pyg/cli/options.py: what ``native-pyg train``'s flags become, the
run config handed on, and the run folder's options beside it."""
import pytest

from native_pyg.cli import CLIError
from native_pyg.cli.options import train_job
from native_pyg.cli.parser import build_parser
from native_pyg.config import RunConfig
from native_pyg.training_job import TrainingJob


def _job(*argv):
    return train_job(build_parser().parse_args(['train', '--out', 'run', *argv]))


def test_shortcut_and_dataset_flags_are_the_config_keys_they_name():
    job = _job('--epochs', '3', '--modalities', 'image, text', '--scorer', 'transe',
               '--no-adversarial', '--device', 'cpu', '--encoder', 'rgcn',
               '--num-neighbors', '10,5', '--quiet', '--deterministic', '--compile',
               '--threads', '2', '--feature-store', 'disk', '--nan-rows', 'missing',
               '--allow-missing-modalities')
    want = RunConfig().override([
        'data.nan_rows=missing', 'data.feature_store=disk', 'model.allow_missing_modalities=true',
        'training.threads=2', 'model.modalities=[image, text]', 'model.scorer=transe',
        'training.adversarial=false', 'training.epochs=3', 'training.device=cpu',
        'model.encoder=rgcn', 'training.num_neighbors=[10, 5]', 'training.progress=false',
        'training.deterministic=true', 'training.compile=true'])
    assert job.run.to_dict() == want.to_dict()
    assert _job('--modalities', 'none', '--num-neighbors', 'full').run.model.modalities == []
    assert _job('--num-neighbors', 'full').run.training.num_neighbors is None


def test_the_job_carries_the_run_folder_and_each_tracker_once():
    job = _job('--resume', '--allow-config-changes', '--tracker', 'csv', '--tracker', 'csv')
    assert job == TrainingJob(job.run, 'run', resume=True, overwrite=False,
                              allow_config_changes=True, trackers=('csv',), quiet=False,
                              options=('--out', '--resume', '--overwrite'))
    assert _job().trackers == () and not _job().resume


def test_set_is_checked_before_a_shortcut_flag_changes_the_same_key():
    # --set applies to the config file's values; the shortcut flags come after, so
    # they never hide a --set value out of range
    with pytest.raises(CLIError, match='training.epochs: must be >= 1, got 0'):
        _job('--set', 'training.epochs=0', '--epochs', '5')
    assert _job('--set', 'training.epochs=7', '--epochs', '5').run.training.epochs == 5


def test_a_store_path_is_made_absolute_and_a_bad_num_neighbors_is_one_line(tmp_path):
    assert _job('--feature-store', str(tmp_path / 'x' / '..' / 'store')).run.data.feature_store \
        == str(tmp_path / 'store')
    with pytest.raises(CLIError, match="--num-neighbors '0': expected neighbours per hop"):
        _job('--num-neighbors', '0')
