"""Run directories: no silent loss of a previous run, one process per
directory, and resume checks what it resumes."""
import json
import subprocess
import sys

import pytest
import torch

from native_pyg.cli import main
from native_pyg.training.runs import RunDirectoryError, RunLock, config_changes

from tests.cli.test_cli import FAST as CLI_FAST

FAST = ['--dataset', 'synthetic', *CLI_FAST[:-2]]  # without its '--epochs 2'


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('run')
    assert main(['train', '--out', str(out), *FAST, '--epochs', '2']) == 0
    return out


def snapshot(out):
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def one_error_line(capsys):
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1, err
    return err[0]


def test_a_second_train_into_a_run_refuses_and_keeps_it(run_dir, capsys):
    before = snapshot(run_dir)
    assert main(['train', '--out', str(run_dir), *FAST, '--epochs', '1']) == 2
    line = one_error_line(capsys)
    assert str(run_dir) in line and '--resume' in line and '--overwrite' in line
    assert snapshot(run_dir) == before


def test_overwrite_replaces_the_run(tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['train', '--out', str(out), *FAST, '--epochs', '2']) == 0
    assert main(['train', '--out', str(out), *FAST, '--epochs', '1', '--overwrite']) == 0
    history = [json.loads(l) for l in (out / 'history.jsonl').read_text().splitlines()]
    assert [r['epoch'] for r in history] == [1]
    assert json.loads((out / 'metrics.json').read_text())['epochs'] == 1
    capsys.readouterr()
    assert main(['train', '--out', str(out), *FAST, '--resume', '--overwrite']) == 2
    assert 'give one of them' in one_error_line(capsys)


def test_two_processes_never_train_into_one_directory(tmp_path):
    with RunLock(str(tmp_path)):
        proc = subprocess.run([sys.executable, '-m', 'native_pyg.cli', 'train', '--out',
                               str(tmp_path), *FAST, '--epochs', '1'],
                              capture_output=True, text=True)
        with pytest.raises(RunDirectoryError, match='another process'):
            RunLock(str(tmp_path)).__enter__()
    assert proc.returncode == 2
    err = [l for l in proc.stderr.splitlines() if l.strip() and 'Warning' not in l
           and not l.startswith('  ')]
    assert len(err) == 1 and 'another process is training into' in err[0]
    assert not (tmp_path / 'last.pt').exists()
    with RunLock(str(tmp_path)):  # released by the holder: free again
        pass


@pytest.mark.parametrize('extra, message', [
    (['--set', 'model.hidden_channels=16'], 'model.hidden_channels (8 -> 16)'),
    (['--no-adversarial'], 'training.adversarial (True -> False)'),
    (['--set', 'training.seed=3'], 'training.seed'),
    (['--set', 'training.lr=0.5'], '--allow-config-changes'),
])
def test_resume_refuses_a_config_it_cannot_continue(run_dir, capsys, extra, message):
    before = snapshot(run_dir)
    assert main(['train', '--out', str(run_dir), *FAST, '--resume', '--epochs', '3',
                 *extra]) == 2
    line = one_error_line(capsys)
    assert message in line and 'last.pt' in line
    assert snapshot(run_dir) == before


def test_resume_applies_and_records_allowed_changes(tmp_path, capsys):
    from native_pyg.training import load_checkpoint
    out = tmp_path / 'run'
    assert main(['train', '--out', str(out), *FAST, '--epochs', '1']) == 0
    assert main(['train', '--out', str(out), *FAST, '--resume', '--epochs', '2',
                 '--set', 'training.lr=0.005', '--allow-config-changes']) == 0
    assert 'training.lr 0.001 -> 0.005' in capsys.readouterr().out
    state = load_checkpoint(str(out / 'last.pt'))
    assert state['epoch'] == 2 and state['config']['training']['lr'] == 0.005
    assert state['optimizer']['param_groups'][0]['lr'] == 0.005
    keys = [c['key'] for c in state['config_log'][0]['changes']]
    assert 'training.lr' in keys and 'training.epochs' in keys


@pytest.mark.parametrize('content', ['tensor', 'truncated'])
def test_a_foreign_or_truncated_last_pt_is_one_line(tmp_path, capsys, content):
    out = tmp_path / 'run'
    assert main(['train', '--out', str(out), *FAST, '--epochs', '1']) == 0
    last = out / 'last.pt'
    if content == 'tensor':
        torch.save(torch.zeros(3), last)
    else:
        last.write_bytes(last.read_bytes()[:100])
    capsys.readouterr()
    assert main(['train', '--out', str(out), *FAST, '--resume', '--epochs', '2']) == 2
    assert str(last) in one_error_line(capsys)


def test_config_changes_classifies_keys():
    saved = {'dataset': 'x', 'model': {'hidden_channels': 8}, 'training': {'epochs': 1, 'lr': 1.0}}
    assert config_changes(saved, saved, 'p') == []
    moved = {**saved, 'training': {'epochs': 5, 'lr': 1.0}}
    assert config_changes(saved, moved, 'p') == [('training.epochs', 1, 5)]
    with pytest.raises(ValueError, match="dataset \\('x' -> 'y'\\)"):
        config_changes(saved, {**saved, 'dataset': 'y'}, 'p', allow_changes=True)


def test_non_finite_stop_names_a_checkpoint_only_if_one_exists(tmp_path):
    from native_pyg.datasets import SyntheticMMKG
    from native_pyg.pipeline import build_model
    from native_pyg.training import NonFiniteLossError, RunConfig, Trainer
    data = SyntheticMMKG(seed=1, num_entities=100, num_relations=3)[0]
    run = RunConfig().override(['model.hidden_channels=4', 'training.progress=false',
                                'training.eval_every=0', 'training.adversarial=false'])
    trainer = Trainer(build_model(data, run), data, run, out_dir=str(tmp_path))
    trainer.model.score_negatives = lambda *a, **k: (torch.full((1,), float('nan')),
                                                     torch.zeros(1, 1))
    with pytest.raises(NonFiniteLossError, match='no checkpoint was written yet'):
        trainer.fit(epochs=1)


def test_stray_checkpoint_temporaries_are_removed_and_model_pt_knows_its_epoch(tmp_path):
    from native_pyg.training import load_checkpoint
    out = tmp_path / 'run'
    out.mkdir()
    (out / '.ckpt-abc.tmp').write_bytes(b'half a checkpoint')
    assert main(['train', '--out', str(out), *FAST, '--epochs', '3',
                 '--set', 'training.eval_every=1']) == 0
    assert not list(out.glob('.ckpt-*.tmp'))
    model, last = load_checkpoint(str(out / 'model.pt')), load_checkpoint(str(out / 'last.pt'))
    assert model['weights_epoch'] == model['best_epoch'] and last['weights_epoch'] == 3


def _cli(*argv, cwd=None):
    return subprocess.run([sys.executable, '-m', 'native_pyg.cli', *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd)


def _error_line(proc):
    assert proc.returncode == 2, proc.stderr
    err = [l for l in proc.stderr.splitlines() if l.strip() and 'Warning' not in l
           and not l.startswith('  ')]
    assert len(err) == 1, proc.stderr
    return err[0]


def _main_error_line(capsys, *argv):
    """The CLI in this process (no interpreter start): exit 2 and one stderr line."""
    from native_pyg.cli import main
    assert main([str(a) for a in argv]) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1, err
    return err[0]


def test_checkpoints_record_modalities_root_and_data(run_dir):
    from native_pyg.data import fingerprint, modalities
    from native_pyg.datasets import SyntheticMMKG
    from native_pyg.training import load_checkpoint
    data = SyntheticMMKG()[0]
    assert not (run_dir / 'best.pt').exists()  # model.pt supersedes it (issue 39)
    for name in ('model.pt', 'last.pt'):
        state = load_checkpoint(str(run_dir / name))
        assert state['config']['model']['modalities'] == modalities(data)  # not None
        assert state['data'] == fingerprint(data)
    assert state['data']['entities'] == data['entity'].num_nodes
    assert len(state['data']['sha256']) == 64


def test_evaluate_from_another_directory_and_on_changed_data(tmp_path, monkeypatch, capsys):
    # in this process (the working directory changed as a shell would): what
    # a relative path means is the point, not the interpreter start
    from native_pyg.cli import main
    from native_pyg.datasets import SyntheticMMKG
    work, elsewhere = tmp_path / 'work', tmp_path / 'elsewhere'
    work.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(work)
    assert main(['train', '--root', 'data', '--out', 'run', *FAST, '--epochs', '1']) == 0
    ck = work / 'run' / 'model.pt'
    # a relative --root was recorded as an absolute path: works from anywhere
    monkeypatch.chdir(elsewhere)
    assert main(['evaluate', '--checkpoint', str(ck)]) == 0
    assert not (elsewhere / 'data').exists()
    # the data moved: one line, and --root points to the new place
    (work / 'data').rename(tmp_path / 'moved')
    capsys.readouterr()
    assert 'does not exist here; give --root' in _main_error_line(
        capsys, 'evaluate', '--checkpoint', ck)
    assert main(['evaluate', '--checkpoint', str(ck), '--root', str(tmp_path / 'moved')]) == 0
    # the data at the root changed (another dataset cached under the same name)
    other = SyntheticMMKG(str(tmp_path / 'other'), seed=7)
    cache = tmp_path / 'moved' / 'processed' / 'synthetic_seed0.pt'
    cache.write_bytes((tmp_path / 'other' / 'processed' / 'synthetic_seed7.pt').read_bytes())
    del other
    capsys.readouterr()
    line = _main_error_line(capsys, 'predict', '--checkpoint', ck, '--root', tmp_path / 'moved',
                            '--head', '0', '--relation', '0')
    assert 'differs from the data this model was trained on' in line


@pytest.mark.parametrize('content', [torch.zeros(3), {'model': {}}, {'config': 5, 'model': {}}])
def test_a_checkpoint_without_config_is_one_line(tmp_path, content, capsys):
    path = tmp_path / 'x.pt'
    torch.save(content, path)
    line = _main_error_line(capsys, 'evaluate', '--checkpoint', path)
    assert f"{path}: not a native_pyg checkpoint" in line


def test_weights_that_do_not_fit_their_config_are_one_line(run_dir, tmp_path, capsys):
    from native_pyg.training import load_checkpoint, save_checkpoint
    state = load_checkpoint(str(run_dir / 'model.pt'))
    state['config']['model']['hidden_channels'] = 16
    save_checkpoint(state, str(tmp_path / 'edited.pt'))
    line = _main_error_line(capsys, 'evaluate', '--checkpoint', tmp_path / 'edited.pt')
    assert 'its weights do not fit the model its config builds' in line


def test_resume_rewrites_the_log_from_the_checkpoint(tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['train', '--out', str(out), *FAST, '--epochs', '2']) == 0
    log = out / 'history.jsonl'
    log.write_text(log.read_text().splitlines()[0] + '\n')  # killed before the 2nd line
    assert main(['train', '--out', str(out), *FAST, '--epochs', '3', '--resume']) == 0
    assert [json.loads(l)['epoch'] for l in log.read_text().splitlines()] == [1, 2, 3]


def test_a_failed_train_leaves_no_empty_out(tmp_path, capsys):
    out = tmp_path / 'new'
    assert main(['train', '--out', str(out), *FAST, '--set', 'training.loss=nope']) == 2
    assert not out.exists()
    out.mkdir()  # a directory the user made stays
    assert main(['train', '--out', str(out), *FAST, '--set', 'training.loss=nope']) == 2
    assert out.is_dir()


def test_the_non_finite_stop_is_one_line(tmp_path):
    line = _error_line(_cli('train', '--out', tmp_path / 'run', *FAST, '--epochs', '2',
                            '--set', 'model.margin=1e30', '--set', 'training.lr=10'))
    assert 'non-finite loss (nan) at epoch 1' in line and 'no checkpoint was written' in line


def test_deterministic_runs_are_bit_identical(tmp_path):
    from native_pyg.training import load_checkpoint
    # both at once: each is one thread, and two cores are there
    procs = [subprocess.Popen([sys.executable, '-m', 'native_pyg.cli', 'train', '--out',
                               str(tmp_path / name), *map(str, FAST), '--epochs', '2',
                               '--deterministic', '--set', 'model.hidden_channels=16'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for name in ('a', 'b')]
    for proc in procs:
        assert proc.wait() == 0, proc.stderr.read()
    runs = [load_checkpoint(str(tmp_path / name / 'last.pt')) for name in ('a', 'b')]
    a, b = runs
    assert a['config']['training']['deterministic'] is True
    for k in a['model']:
        assert torch.equal(a['model'][k], b['model'][k]), k
    strip = lambda h: [{k: v for k, v in r.items() if k not in ('seconds', 'triples_per_s')}
                       for r in h]  # noqa: E731
    assert strip(a['history']) == strip(b['history'])


def test_checkpoints_older_than_precision_and_reuse_memory_resume_unchanged():
    from native_pyg.training import RunConfig
    from native_pyg.training.runs import config_changes
    new = RunConfig().to_dict()
    saved = RunConfig().to_dict()
    del saved['training']['precision'], saved['training']['reuse_memory']  # written before them
    changes = config_changes(saved, new, 'last.pt')
    assert [k for k, _, _ in changes] == ['training.reuse_memory']  # a speed setting: allowed
    new['training']['reuse_memory'] = False
    assert config_changes(RunConfig().to_dict(), new, 'last.pt')
    new['training']['precision'] = 'bf16'  # numbers change: only when asked for
    with pytest.raises(ValueError, match=r"training\.precision \('fp32' -> 'bf16'\)"):
        config_changes(saved, new, 'last.pt')
    assert config_changes(saved, new, 'last.pt', allow_changes=True)
