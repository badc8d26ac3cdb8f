"""native-pyg tune / native_pyg.tune: an Optuna study over the config,
selected and pruned on validation only, resumable, written as best.yaml."""
import json
import sqlite3
from pathlib import Path

import pytest

optuna = pytest.importorskip('optuna', reason='native-pyg tune needs Optuna (the test extra)')

import native_pyg  # noqa: E402
from native_pyg.cli import main  # noqa: E402
from native_pyg.training import RunConfig, Trainer  # noqa: E402
from native_pyg.tuning import DEFAULT_SPACES, check_space  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

SPACE = {'training.lr': {'type': 'float', 'low': 1e-3, 'high': 3e-2, 'log': True},
         'model.hidden_channels': {'type': 'categorical', 'choices': [8, 16]}}
BUDGET = ['training.epochs=1', 'training.eval_every=1', 'training.batch_size=4096',
          'training.num_negatives=4']


def _finished(study):
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(states=states)


def test_a_study_selects_on_valid_resumes_and_writes_a_runnable_best_yaml(tmp_path, monkeypatch):
    splits = []
    evaluate = Trainer.evaluate
    monkeypatch.setattr(Trainer, 'evaluate',
                        lambda self, split='valid', **kw: splits.append(split) or
                        evaluate(self, split, **kw))
    from optuna.visualization import matplotlib as plots
    evaluators = []
    plot = plots.plot_param_importances
    monkeypatch.setattr(plots, 'plot_param_importances', lambda study, evaluator=None, **kw:
                        evaluators.append(evaluator) or plot(study, evaluator=evaluator, **kw))
    out = tmp_path / 'study'
    result = native_pyg.tune('synthetic', out=str(out), trials=3, space=SPACE,
                             overrides=BUDGET, pruner='none')
    # importances by a named, seeded evaluator: Optuna's default changed between releases
    assert [type(e).__name__ for e in evaluators] == ['FanovaImportanceEvaluator']
    assert (out / 'importances.png').exists()
    assert set(splits) == {'valid'}  # the test split is never looked at
    assert len(_finished(result.study)) == 3
    best = result.study.best_trial
    assert result.best_valid_mrr == pytest.approx(best.value)
    loaded = RunConfig.from_yaml(str(out / 'best.yaml'))  # what train --config reads
    assert loaded.training.lr == pytest.approx(best.params['training.lr'])
    assert loaded.model.hidden_channels == best.params['model.hidden_channels']
    assert loaded.training.epochs == 1 and (out / 'history.png').exists()
    # --trials is the study's total: asking for 4 adds one trial, with new values
    again = native_pyg.tune('synthetic', out=str(out), trials=4, space=SPACE, overrides=BUDGET,
                            pruner='none')
    trials = _finished(again.study)
    assert len(trials) == 4 and len(splits) == 4  # one validation per 1-epoch trial
    assert trials[3].params != trials[0].params
    with sqlite3.connect(out / 'study.db') as db:  # the study lives in SQLite under --out
        assert db.execute('select count(*) from trials').fetchone()[0] == 4


def test_pruned_trials_stop_early_on_valid_mrr(tmp_path):
    # every trial is pruned at its first report after the warm-up (its MRR is below 1)
    pruner = optuna.pruners.ThresholdPruner(lower=1.0, n_warmup_steps=1)
    with pytest.raises(ValueError, match='no trial completed'):
        native_pyg.tune('synthetic', out=str(tmp_path / 's'), trials=2, space=SPACE,
                        overrides=['training.epochs=4', *BUDGET[1:]], pruner=pruner)
    study = optuna.load_study(study_name='native-pyg',
                              storage=f"sqlite:///{tmp_path / 's' / 'study.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(t.user_attrs['epochs'] < 4 for t in study.trials)  # of a 4-epoch budget
    assert all(len(t.intermediate_values) == t.user_attrs['epochs'] for t in study.trials)


def test_search_spaces_are_checked_in_one_line(tmp_path, capsys):
    for variant in ('native', 'native-no-comat', 'mean', 'adamf', 'rotate'):
        check_space(DEFAULT_SPACES[variant])
    assert 'training.mu' in DEFAULT_SPACES['native']
    assert 'training.mu' not in DEFAULT_SPACES['native-no-comat']  # CoMAT off: no weight
    bad = {'training.nope': {'type': 'float', 'low': 0, 'high': 1}}
    with pytest.raises(ValueError, match='training.nope: not a config key'):
        check_space(bad)
    with pytest.raises(ValueError, match='a log scale needs low > 0'):
        check_space({'training.lr': {'type': 'float', 'low': 0, 'high': 1, 'log': True}})
    path = tmp_path / 'space.yaml'
    path.write_text('training.lr: {type: float, low: 1, high: 0}\n')
    assert main(['tune', '--out', str(tmp_path / 'o'), '--space', str(path)]) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and 'training.lr: float needs finite numbers low < high' in err[0]


def test_the_cli_runs_a_study_and_its_best_config_trains(tmp_path, capsys):
    space = tmp_path / 'space.yaml'
    space.write_text(json.dumps(SPACE))  # JSON is YAML
    out = tmp_path / 'study' / 'synthetic' / 'native'  # the layout of examples/study
    sets = [a for b in BUDGET[2:] for a in ('--set', b)]
    assert main(['tune', '--out', str(out), '--trials', '2', '--space', str(space),
                 '--epochs', '1', '--eval-every', '1', '--quiet', '--tracker', 'csv', *sets]) == 0
    printed = capsys.readouterr().out
    assert 'best valid MRR' in printed
    if (out / 'importances.png').exists():  # two trials: drawn, with a word of caution
        assert 'importances.png: from 2 completed trials only' in printed
    for n in (0, 1):  # one tracked run per trial
        assert (out / 'trials' / str(n) / 'csv' / 'metrics.csv').exists()
    assert main(['train', '--config', str(out / 'best.yaml'), '--out', str(out / 'retrain-seed0'),
                 '--quiet']) == 0
    # examples/study/table.py tabulates the study and its retrained run
    import runpy
    capsys.readouterr()
    table = runpy.run_path(str(REPO / 'examples' / 'study' / 'table.py'))
    table['main'](str(tmp_path / 'study'))
    row = capsys.readouterr().out.strip().splitlines()[-1].split(' | ')
    test = json.loads((out / 'retrain-seed0' / 'metrics.json').read_text())['test']['both']
    assert row[:3] == ['| synthetic', 'native', '2']
    assert row[5] == f"{100 * test['mrr']:.2f} ± 0.00" and row[4] == '1'


# --- issue 39: hostile spaces, studies and processes ---------------------------------------
def _one_error(capsys) -> str:
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and err[0].startswith('native-pyg: error:'), err
    return err[0]


@pytest.mark.parametrize('entry,words', [
    ({'type': 'float', 'low': 1e-4, 'high': 1e-2, 'step': 'abc'}, 'step must be a positive'),
    ({'type': 'int', 'low': 0.5, 'high': 4, 'log': True}, 'int needs whole numbers'),
    ({'type': 'float', 'low': 1e-4, 'high': 1e-2, 'log': True, 'step': 1e-4},
     'a log scale takes no step'),
    ({'type': 'categorical', 'choices': [[1, 2], [3]]}, 'categorical choices must be numbers'),
])
def test_bad_search_spaces_are_one_line_before_any_trial(tmp_path, capsys, entry, words):
    key = 'training.lr' if entry['type'] == 'float' else 'training.num_negatives'
    path = tmp_path / 'space.yaml'
    path.write_text(json.dumps({key: entry}))
    out = tmp_path / 'o'
    assert main(['tune', '--out', str(out), '--space', str(path), '--trials', '1']) == 2
    assert words in _one_error(capsys)
    assert not (out / 'study.db').exists()  # no study, so no failed trial left in one


def test_a_changed_space_on_resume_and_damaged_studies_are_one_line(tmp_path, capsys):
    out = tmp_path / 'o'
    native_pyg.tune('synthetic', out=str(out), trials=1, space=SPACE, overrides=BUDGET,
                    pruner='none')
    capsys.readouterr()
    changed = dict(SPACE, **{'model.hidden_channels': {'type': 'int', 'low': 8, 'high': 16}})
    path = tmp_path / 'changed.yaml'
    path.write_text(json.dumps(changed))
    sets = [a for b in BUDGET for a in ('--set', b)]
    assert main(['tune', '--out', str(out), '--space', str(path), '--trials', '2', *sets]) == 2
    assert 'model.hidden_channels was searched as' in _one_error(capsys)
    study = optuna.load_study(study_name='native-pyg', storage=f"sqlite:///{out / 'study.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    space = tmp_path / 'space.yaml'
    space.write_text(json.dumps(SPACE))
    for damage, words in (('garbage', 'not a study database (not SQLite)'),
                          ('truncated', 'the study database failed'),
                          ('directory', 'is a directory, not a study database')):
        bad = tmp_path / damage
        bad.mkdir()
        db = bad / 'study.db'
        if damage == 'garbage':
            db.write_bytes(b'not a database at all' * 10)
        elif damage == 'truncated':
            db.write_bytes((out / 'study.db').read_bytes()[:3000])
        else:
            db.mkdir()
        assert main(['tune', '--out', str(bad), '--space', str(space), '--trials', '1',
                     *sets]) == 2
        assert words in _one_error(capsys)


def test_two_processes_on_one_new_study_share_it_and_stop_at_the_total(tmp_path):
    import subprocess
    import sys
    space = tmp_path / 'space.yaml'
    space.write_text(json.dumps(SPACE))
    out = tmp_path / 'shared'
    argv = [sys.executable, '-m', 'native_pyg', 'tune', '--out', str(out), '--space',
            str(space), '--trials', '4', '--pruner', 'none', '--threads', '1', '--quiet',
            *[a for b in BUDGET for a in ('--set', b)]]
    procs = [subprocess.Popen(argv, cwd=str(REPO), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-500:] for r in results]
    assert not any('Traceback' in err or 'IntegrityError' in err for _, err in results)
    study = optuna.load_study(study_name='native-pyg', storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 4 and len(_finished(study)) == 4  # not 5
    assert sum(out_.count('trial ') for out_, _ in results) >= 4


def test_a_process_done_with_its_trials_waits_for_another_s_running_one(tmp_path, monkeypatch,
                                                                       capsys):
    """Several copies on one study: the copy that finds the total reached while
    another copy's trial still runs waits for it, so its best.yaml (which a
    retraining then reads) is the best of every trial, not of those it saw."""
    import threading
    import time

    import native_pyg.tuning as tuning
    monkeypatch.setattr(tuning, 'WAIT_SECONDS', 0.05)
    out = tmp_path / 'shared'
    native_pyg.tune('synthetic', out=str(out), trials=1, space=SPACE, overrides=BUDGET,
                    pruner='none')
    first = tuning.open_study(str(out), optuna.pruners.NopPruner()).trials[0]
    # another process's trial, asked and still running: the best once it reports
    other = tuning.open_study(str(out), optuna.pruners.NopPruner())
    running = other.ask()
    config = RunConfig().override(['training.lr=0.0123']).to_dict()
    running.set_user_attr('config', config)
    done = []
    waiting = threading.Thread(target=lambda: done.append(native_pyg.tune(
        'synthetic', out=str(out), trials=2, space=SPACE, overrides=BUDGET, pruner='none')))
    waiting.start()
    printed, deadline = '', time.time() + 120
    while 'still running in another process; waiting' not in printed and waiting.is_alive() \
            and time.time() < deadline:  # until it says it waits (loading takes a moment)
        time.sleep(0.05)
        printed += capsys.readouterr().out
    time.sleep(0.5)  # several polls of WAIT_SECONDS
    assert waiting.is_alive() and not done  # the total is reached, but a trial still runs
    assert 'best of 1 completed trials' in (out / 'best.yaml').read_text()
    other.tell(running, first.value + 0.5)
    waiting.join(timeout=30)
    assert not waiting.is_alive() and done
    assert done[0].best_valid_mrr == pytest.approx(first.value + 0.5)
    assert len(done[0].study.trials) == 2  # waited; drew no third trial
    head = (out / 'best.yaml').read_text().splitlines()[0]
    assert 'best of 2 completed trials' in head and 'trial 1,' in head
    assert RunConfig.from_yaml(str(out / 'best.yaml')).training.lr == pytest.approx(0.0123)
    assert '1 trial(s) still running in another process; waiting' in printed


def test_ctrl_c_in_a_trial_is_one_line_and_the_trial_does_not_count(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    space = tmp_path / 'space.yaml'
    space.write_text(json.dumps(SPACE))
    out = tmp_path / 'o'
    argv = [sys.executable, '-m', 'native_pyg', 'tune', '--out', str(out), '--space',
            str(space), '--trials', '2', '--threads', '1', '--quiet', '--set',
            'training.epochs=500', '--set', 'training.eval_every=100']
    proc = subprocess.Popen(argv, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                        signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        running = []
        while not running and time.time() < deadline:
            time.sleep(0.5)
            if (out / 'study.db').exists():
                with sqlite3.connect(out / 'study.db') as db:
                    try:
                        running = db.execute("select state from trials").fetchall()
                    except sqlite3.OperationalError:  # tables not made yet
                        pass
        assert running, 'no trial started'
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert lines == ['native-pyg: interrupted'], err
    study = optuna.load_study(study_name='native-pyg', storage=f"sqlite:///{out / 'study.db'}")
    assert not _finished(study)  # the interrupted trial is failed, so a rerun replaces it
