"""Result trackers (--tracker csv|tensorboard|mlflow|wandb): config,
per-epoch loss, validation metrics, seconds and modality weights per relation."""
import csv
import json

import pytest

from native_pyg.cli import main
from native_pyg.training.trackers import make_tracker

FAST = ['--set', 'model.hidden_channels=8', '--set', 'training.batch_size=4096',
        '--set', 'training.num_negatives=4', '--set', 'training.eval_every=1',
        '--set', 'training.progress=false', '--quiet']


def test_csv_and_tensorboard_track_a_run_and_its_resume(tmp_path):
    pytest.importorskip('tensorboard', reason='the tensorboard tracker needs tensorboard '
                                              '(in the test extra)')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / 'run'
    assert main(['train', '--out', str(out), *FAST, '--epochs', '2',
                 '--tracker', 'csv', '--tracker', 'tensorboard']) == 0
    config = json.loads((out / 'tracking' / 'csv' / 'config.json').read_text())
    assert config['model']['hidden_channels'] == 8
    with open(out / 'tracking' / 'csv' / 'metrics.csv') as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r['epoch'])) for r in rows] == [1, 2]
    history = [json.loads(l) for l in (out / 'history.jsonl').read_text().splitlines()]
    for row, rec in zip(rows, history):  # the same numbers as the run's own log
        assert float(row['loss']) == pytest.approx(rec['loss'])
        assert float(row['valid_mrr']) == pytest.approx(rec['valid_mrr'])
        assert float(row['seconds']) > 0
    weights = [k for k in rows[0] if k.startswith('weights/')]
    assert weights and {k.rsplit('/', 1)[1] for k in weights} >= {'structure', 'image'}
    per_relation = {}
    for k in weights:  # ReDAF's weights of one relation sum to 1 over the modalities
        per_relation.setdefault(k.split('/')[1], []).append(float(rows[0][k]))
    assert all(sum(v) == pytest.approx(1.0, abs=1e-4) for v in per_relation.values())
    # resumed: the table continues, rows of the resumed epochs are not repeated
    assert main(['train', '--out', str(out), '--resume', *FAST, '--epochs', '3',
                 '--tracker', 'csv']) == 0
    with open(out / 'tracking' / 'csv' / 'metrics.csv') as f:
        assert [int(float(r['epoch'])) for r in csv.DictReader(f)] == [1, 2, 3]
    events = EventAccumulator(str(out / 'tracking' / 'tensorboard'))
    events.Reload()
    assert [e.step for e in events.Scalars('loss')] == [1, 2]
    assert any(t.startswith('weights/') for t in events.Tags()['scalars'])


@pytest.mark.parametrize('name, package', [('mlflow', 'mlflow'), ('wandb', 'wandb')])
def test_optional_trackers_name_their_package_when_missing(tmp_path, name, package):
    try:
        __import__(package)
    except ImportError:
        with pytest.raises(ValueError, match='pip install'):
            make_tracker(name, str(tmp_path))
    else:
        tracker = make_tracker(name, str(tmp_path / name))
        tracker.log_config({'training': {'lr': 0.01}})
        tracker.log_metrics({'loss': 1.0, 'valid_hits@10': 0.5}, 1)
        tracker.close()
    with pytest.raises(ValueError, match='unknown tracker'):
        make_tracker('neptune', str(tmp_path))
