import json
import subprocess
import sys

import pytest

from native_pyg.cli import main
from tests.conftest import fill_wildkgc_root, needs_shared

FAST = ['--set', 'model.hidden_channels=8', '--set', 'training.batch_size=4096',
        '--set', 'training.num_negatives=4', '--set', 'training.eval_every=1',
        '--set', 'training.progress=false', '--epochs', '2']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp('run')
    assert main(['train', '--dataset', 'synthetic', '--out', str(out), *FAST]) == 0
    return out


def test_train_writes_outputs(trained):
    metrics = json.loads((trained / 'metrics.json').read_text())
    assert metrics['epochs'] == 2
    for split in ('valid', 'test'):
        assert 0 < metrics[split]['both']['mrr'] <= 1
    for f in ('model.pt', 'last.pt', 'best.pt', 'curves.png', 'history.jsonl'):
        assert (trained / f).exists(), f


def test_evaluate_reproduces_test_metrics(trained, tmp_path, capsys):
    out = tmp_path / 'm.json'
    assert main(['evaluate', '--checkpoint', str(trained / 'model.pt'), '--out', str(out)]) == 0
    got = json.loads(out.read_text())
    want = json.loads((trained / 'metrics.json').read_text())['test']
    assert got['both']['mrr'] == pytest.approx(want['both']['mrr'], rel=1e-5)
    assert 'MRR' in capsys.readouterr().out


def test_predict_by_name_and_id(trained, capsys):
    assert main(['predict', '--checkpoint', str(trained / 'model.pt'), '--head', 'entity_3',
                 '--relation', 'relation_1', '--k', '5']) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()]
    assert lines[0].startswith('top 5 tails for (entity_3, relation_1, ?)')
    assert len(lines) == 6
    scores = [float(l.split()[1]) for l in lines[1:]]
    assert scores == sorted(scores, reverse=True)
    assert main(['predict', '--checkpoint', str(trained / 'model.pt'), '--tail', '3',
                 '--relation', '1', '--k', '3']) == 0
    assert 'top 3 heads for (?, relation_1, entity_3)' in capsys.readouterr().out


def test_predict_with_an_added_entity_and_save_it(trained, tmp_path, capsys):
    import torch
    ckpt = str(trained / 'model.pt')
    torch.save({'image': torch.randn(64), 'name': 'brand new'}, tmp_path / 'e.pt')
    saved = tmp_path / 'with-new.pt'
    assert main(['predict', '--checkpoint', ckpt, '--add-entity', str(tmp_path / 'e.pt'),
                 '--head', 'brand new', '--relation', 'relation_1', '--k', '3',
                 '--save', str(saved)]) == 0
    out = capsys.readouterr().out
    assert 'top 3 tails for (brand new, relation_1, ?)' in out and saved.exists()
    # the saved checkpoint knows the entity, also as a candidate
    assert main(['predict', '--checkpoint', str(saved), '--tail', 'brand new',
                 '--relation', '1', '--k', '2']) == 0
    assert 'heads for (?, relation_1, brand new)' in capsys.readouterr().out
    # --new-entity / --new-name: the spellings of earlier versions still work
    assert main(['predict', '--checkpoint', ckpt, '--new-entity', str(tmp_path / 'e.pt'),
                 '--head', '0', '--relation', '1', '--save', str(saved)]) == 2
    assert 'nothing is overwritten' in capsys.readouterr().err
    torch.save({'image': torch.randn(5)}, tmp_path / 'bad.pt')
    assert main(['predict', '--checkpoint', ckpt, '--add-entity', str(tmp_path / 'bad.pt'),
                 '--head', '0', '--relation', '1']) == 2
    assert '64 columns' in capsys.readouterr().err
    assert main(['predict', '--checkpoint', ckpt, '--add-name', 'Lake Bled',
                 '--head', '0', '--relation', '1']) == 2
    assert '--text-features names' in capsys.readouterr().err
    assert main(['predict', '--checkpoint', ckpt, '--new-name', 'Lake Bled',
                 '--head', '0', '--relation', '1']) == 2
    assert '--add-name needs' in capsys.readouterr().err


def test_metrics_split_by_seen_and_unseen_entities(trained):
    import json
    metrics = json.loads((trained / 'metrics.json').read_text())['test']
    groups = metrics['per_group']
    assert groups['seen']['count'] + groups['unseen']['count'] == metrics['num_triples']


def test_resume_continues(trained, capsys):
    assert main(['train', '--dataset', 'synthetic', '--out', str(trained), '--resume',
                 *FAST[:-1], '3']) == 0
    assert 'resumed from' in capsys.readouterr().out
    assert json.loads((trained / 'metrics.json').read_text())['epochs'] == 3


BAD_ARGUMENTS = [
    (['predict', '--checkpoint', '{ck}', '--head', 'entity_3x', '--relation', 'relation_1'],
     "unknown entity 'entity_3x'; did you mean"),
    (['predict', '--checkpoint', '{ck}', '--head', 'entity_3', '--relation', 'relatoin_1'],
     "unknown relation 'relatoin_1'; did you mean 'relation_1'"),
    (['predict', '--checkpoint', '{ck}', '--relation', 'relation_1'], 'exactly one of --head'),
    (['predict', '--checkpoint', '{ck}', '--head', '99999', '--relation', '0'], 'outside'),
    (['evaluate', '--checkpoint', '/nonexistent.pt'], 'checkpoint not found'),
    (['train', '--out', '{tmp}', '--scorer', 'foo'], "--scorer 'foo'"),
    (['train', '--out', '{tmp}', '--set', 'training.nope=1'], "unknown key 'training.nope'"),
    (['train', '--out', '{tmp}', '--modalities', 'image,smell'], "['smell'] not in the dataset"),
    (['train', '--out', '{tmp}', '--config', '/nonexistent.yaml'], 'nonexistent.yaml'),
    (['train', '--dataset', 'MKG-Y'], 'the following arguments are required: --out'),
    (['evaluate', '--checkpoint', '{ck}', '--split', 'train'], "invalid choice: 'train'"),
    (['train', '--out', '{tmp}', '--set', 'training.batch_size=0'],
     'training.batch_size: must be >= 1, got 0'),
    (['train', '--out', '{tmp}', '--set', 'training.num_negatives=0'],
     'training.num_negatives: must be >= 1'),
    (['train', '--out', '{tmp}', '--set', 'training.lr=-1'], 'training.lr: must be > 0'),
    (['train', '--out', '{tmp}', '--set', 'training.loss=nope'], 'training.loss must be one of'),
    (['train', '--out', '{tmp}', '--epochs', '0'], 'training.epochs: must be >= 1, got 0'),
    (['train', '--out', '{tmp}', '--epochs', '-3'], 'training.epochs: must be >= 1, got -3'),
    (['train', '--out', '{tmp}', '--device', 'nope'], "unknown device 'nope'"),
    (['train', '--out', '{tmp}', '--dataset', 'NOPE'], "unknown dataset 'NOPE'"),
    (['train', '--out', '{tmp}', '--config', '{tmp}/list.yaml'], 'list.yaml: expected a mapping'),
    (['train', '--out', '{tmp}', '--config', '{tmp}/model5.yaml'],
     "model5.yaml: section 'model' must be a mapping"),
    (['predict', '--checkpoint', '{ck}', '--head', 'entity_3', '--relation', 'relation_1',
      '--k', '-2'], '--k -2: expected a positive number'),
    (['train', '--out', '{tmp}', '--set', 'training.lr=1e39'], 'training.lr: must be <= 10'),
    (['train', '--out', '{tmp}', '--set', 'model.modalities=image', '--set', 'model.scorer=x'],
     "--scorer 'x'"),
    (['train', '--out', '{tmp}', '--dedupe'], 'dedupe: options for datasets read from files'),
    (['train', '--out', '{tmp}', '--dataset', 'MKG-Y'], "dataset 'MKG-Y' needs a root"),
    (['train', '--out', '{ck_dir}'], 'already holds a run'),
    (['train', '--out', '{ck_dir}', '--resume', '--set', 'model.hidden_channels=9'],
     'cannot resume with a different model.hidden_channels (8 -> 9)'),
    (['stats', '--dataset', 'synthetic', '--nan-rows', 'missing'],
     'nan_rows: options for datasets read from files'),
]


@pytest.fixture(scope='module')
def bad_argument_runs(trained, tmp_path_factory):
    """Every case of BAD_ARGUMENTS as its own ``native-pyg`` process, as
    many at a time as there are cores (each in its own directory), and the
    files of the trained run before and after all of them."""
    from concurrent.futures import ThreadPoolExecutor
    import os

    def snapshot():
        return {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}

    def run(i):
        tmp = tmp_path_factory.mktemp(f'case{i}')
        (tmp / 'list.yaml').write_text('- 1\n- 2\n')
        (tmp / 'model5.yaml').write_text('model: 5\n')
        argv = [a.format(ck=trained / 'model.pt', ck_dir=trained, tmp=tmp)
                for a in BAD_ARGUMENTS[i][0]]
        return subprocess.run([sys.executable, '-m', 'native_pyg.cli', *argv],
                              capture_output=True, text=True)

    before = snapshot()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        procs = list(pool.map(run, range(len(BAD_ARGUMENTS))))
    return procs, before, snapshot()


@pytest.mark.parametrize('case', range(len(BAD_ARGUMENTS)),
                         ids=[' '.join(a[:3]) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_one_line_exit_2(bad_argument_runs, case):
    procs, before, after = bad_argument_runs
    proc, message = procs[case], BAD_ARGUMENTS[case][1]
    assert proc.returncode == 2, proc.stderr
    err = [l for l in proc.stderr.splitlines() if l.strip() and 'Warning' not in l
           and not l.startswith('  ')]
    assert len(err) == 1 and message in err[0], proc.stderr
    assert after == before  # the existing run is untouched


def test_cuda_without_cuda_is_one_line(monkeypatch, tmp_path, capsys):
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert main(['train', '--out', str(tmp_path), '--device', 'cuda', *FAST]) == 2
    assert 'CUDA is not available' in capsys.readouterr().err


def test_list_keys_take_comma_separated_values():
    from native_pyg.training import RunConfig
    run = RunConfig().override(['model.modalities=image', 'training.num_neighbors=10,5'])
    assert run.model.modalities == ['image'] and run.training.num_neighbors == [10, 5]
    with pytest.raises(ValueError, match='expected integers'):
        RunConfig().override(['training.num_neighbors=a,b'])


def test_no_arguments_print_the_commands_and_version_prints_the_version():
    proc = subprocess.run([sys.executable, '-m', 'native_pyg.cli'], capture_output=True, text=True)
    assert proc.returncode == 2
    for command in ('stats', 'train', 'evaluate', 'predict'):
        assert command in proc.stderr
    proc = subprocess.run([sys.executable, '-m', 'native_pyg.cli', '--version'],
                          capture_output=True, text=True)
    from native_pyg import __version__
    assert proc.returncode == 0 and proc.stdout.strip() == f'native-pyg {__version__}'


def test_without_a_terminal_progress_is_one_plain_line_per_epoch(tmp_path):
    fast = [a for a in FAST if a != 'training.progress=false']
    fast = [a for i, a in enumerate(fast) if not (a == '--set' and fast[i + 1] == '--epochs')]
    proc = subprocess.run([sys.executable, '-m', 'native_pyg.cli', 'train', '--out',
                           str(tmp_path / 'run'), *fast], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in proc.stdout.splitlines() if l.startswith('epoch ')]
    assert [l.split()[1] for l in lines] == ['1/2', '2/2'] and 'valid MRR' in lines[0]
    assert '\r' not in proc.stdout + proc.stderr and '\x1b[' not in proc.stdout + proc.stderr
    assert len(proc.stdout) + len(proc.stderr) < 8000
    quiet = subprocess.run([sys.executable, '-m', 'native_pyg.cli', 'train', '--quiet', '--out',
                            str(tmp_path / 'quiet'), *fast], capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    assert 'epoch 1/2' not in quiet.stdout and 'NativE(' not in quiet.stdout
    assert 'MRR' in quiet.stdout  # the final metrics still


class _Terminal:
    """A stderr that says it is a terminal, recording what is written."""
    def __init__(self):
        self.text = []

    def isatty(self):
        return True

    def write(self, s):
        self.text.append(s)

    def flush(self):
        pass


@pytest.mark.parametrize('progress', [True, False])
def test_progress_false_silences_every_bar(tmp_path, monkeypatch, progress):
    terminal = _Terminal()
    monkeypatch.setattr(sys, 'stderr', terminal)
    argv = ['train', '--out', str(tmp_path / 'run'), *FAST,
            '--set', f'training.progress={str(progress).lower()}']
    assert main(argv) == 0
    bars = ''.join(terminal.text)
    if progress:  # training and the final test evaluation both show a bar
        assert 'training' in bars and 'link prediction' in bars
    else:
        assert bars == ''


@needs_shared
def test_dataset_flags_and_a_checksum_mismatch_through_the_cli(tmp_path, capsys):
    fill_wildkgc_root(tmp_path, 'TIVA')
    assert main(['stats', '--dataset', 'TIVA', '--root', str(tmp_path), '--json',
                 str(tmp_path / 'raw.json')]) == 0
    assert main(['stats', '--dataset', 'TIVA', '--root', str(tmp_path), '--dedupe',
                 '--remove-leakage', '--json', str(tmp_path / 'clean.json')]) == 0
    raw, clean = (json.loads((tmp_path / f).read_text()) for f in ('raw.json', 'clean.json'))
    assert raw != clean and json.dumps(clean).count('8419') < json.dumps(raw).count('8419')
    path = tmp_path / 'TIVA' / 'raw' / 'train2id.txt'
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b'\n', b'\r\n'))
    capsys.readouterr()
    assert main(['stats', '--dataset', 'TIVA', '--root', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'train2id.txt: differs from the released file only' in err[0]
    assert main(['stats', '--dataset', 'TIVA', '--root', str(tmp_path), '--no-verify']) == 0


def test_no_network_for_a_download_is_one_line(tmp_path, monkeypatch, capsys):
    import urllib.error
    import native_pyg.datasets.wildkgc as wk

    def offline(url, folder, log=True):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr(wk, 'download_url', offline)
    assert main(['stats', '--dataset', 'MKG-W', '--root', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'cannot download https://' in err[0]


def test_evaluate_protocols_and_a_sample_with_confidence_intervals(trained, tmp_path, capsys):
    # full ranking streamed over candidate chunks is tested against the in-memory
    # evaluator in tests/evaluation/test_streaming.py; here the flags reach it
    model = str(trained / 'model.pt')
    full = json.loads((trained / 'metrics.json').read_text())['test']
    sampled, sample = tmp_path / 'sampled.json', tmp_path / 'sample.json'
    assert main(['evaluate', '--checkpoint', model, '--protocol', 'sampled',
                 '--num-candidates', '50', '--out', str(sampled)]) == 0
    sampled = json.loads(sampled.read_text())
    assert sampled['protocol'] == 'sampled' and sampled['num_candidates'] == 50
    assert sampled['both']['mrr'] >= full['both']['mrr']  # 50 candidates, not all
    assert main(['evaluate', '--checkpoint', model, '--protocol', 'streamed',
                 '--eval-sample', '200', '--out', str(sample)]) == 0
    sample = json.loads(sample.read_text())
    assert sample['protocol'] == 'streamed'
    assert sample['sampled_queries'] == 200 and sample['num_triples'] == 200
    ci = sample['ci95']['mrr']
    assert 0 < ci and abs(sample['both']['mrr'] - full['both']['mrr']) < 3 * ci
    assert '95 % confidence' in capsys.readouterr().out
    assert main(['evaluate', '--checkpoint', model, '--eval-sample', '0']) == 2
