import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from native_pyg.cli import main
from tests.conftest import fill_wildkgc_root, needs_shared

REPO = Path(__file__).resolve().parents[2]
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
    for f in ('model.pt', 'last.pt', 'curves.png', 'history.jsonl'):
        assert (trained / f).exists(), f
    assert not (trained / 'best.pt').exists()  # not a copy of model.pt (issue 39)


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
    (['train', '--out', '{tmp}', '--scorer', 'foo'],
     "model.scorer: must be one of rotate, transe, distmult, complex, got 'foo'"),
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
    (['train', '--out', '{tmp}', '--set', 'training.loss=nope'], 'training.loss: must be one of'),
    (['train', '--out', '{tmp}', '--epochs', '0'], 'training.epochs: must be >= 1, got 0'),
    (['train', '--out', '{tmp}', '--epochs', '-3'], 'training.epochs: must be >= 1, got -3'),
    (['train', '--out', '{tmp}', '--device', 'nope'], "training.device: must be one of auto"),
    (['train', '--out', '{tmp}', '--dataset', 'NOPE'], "unknown dataset 'NOPE'"),
    (['train', '--out', '{tmp}', '--config', '{tmp}/list.yaml'], 'list.yaml: expected a mapping'),
    (['train', '--out', '{tmp}', '--config', '{tmp}/model5.yaml'],
     "model5.yaml: section 'model' must be a mapping"),
    (['predict', '--checkpoint', '{ck}', '--head', 'entity_3', '--relation', 'relation_1',
      '--k', '-2'], '--k -2: expected a positive number'),
    (['train', '--out', '{tmp}', '--set', 'training.lr=1e39'], 'training.lr: must be <= 10'),
    (['train', '--out', '{tmp}', '--set', 'model.modalities=image', '--set', 'model.scorer=x'],
     "model.scorer: must be one of"),
    (['train', '--out', '{tmp}', '--dedupe'], 'dedupe: options for datasets read from files'),
    (['train', '--out', '{tmp}', '--dataset', 'MKG-Y'], "dataset 'MKG-Y' needs a root"),
    (['train', '--out', '{ck_dir}'], 'already holds a run'),
    (['train', '--out', '{ck_dir}', '--resume', '--set', 'model.hidden_channels=9'],
     'cannot resume with a different model.hidden_channels (8 -> 9)'),
    (['stats', '--dataset', 'synthetic', '--nan-rows', 'missing'],
     'nan_rows: options for datasets read from files'),
]


# issue 24: nothing a user does loses a run or shows a traceback
BAD_ARGUMENTS += [
    # --overwrite with a run that then fails: the finished run stays (checked below)
    (['train', '--out', '{ck_dir}', '--overwrite', '--set', 'training.loss=bogus'],
     'training.loss: must be one of'),
    (['train', '--out', '{ck_dir}', '--overwrite', '--set', 'training.gp_on=bogus'],
     'training.gp_on: must be one of both, head'),
    (['train', '--out', '{ck_dir}', '--overwrite', '--set', 'model.margin=1e30', *FAST],
     'non-finite'),  # fails in its first step, after the old run was set aside
    # paths written: one line naming the path and the cause
    (['train', '--out', '/proc/native-pyg-test/run', *FAST], '/proc/native-pyg-test/run'),
    (['train', '--out', '{tmp}/file', *FAST], 'exists and is a file'),
    (['train', '--out', '', *FAST], 'argument --out: empty path'),
    (['stats', '--plot', '{tmp}/missing/coverage.png'], 'missing does not exist'),
    (['evaluate', '--checkpoint', '{ck}', '--out', '{tmp}/missing/m.json'],
     'missing does not exist'),
    (['predict', '--checkpoint', '{ck}', '--head', '0', '--relation', '0',
      '--add-entity', '{tmp}/pickled.pt'],
     'pickled.pt: not an entity file written by native_pyg'),
    (['evaluate', '--checkpoint', '{tmp}/pickled.pt'],
     'pickled.pt: not a checkpoint written by native_pyg'),
    (['stats', '--dataset', '{tmp}/latin1'], 'train.tsv:2: not UTF-8 text'),
    # config ranges and enums, YAML duplicates
    (['train', '--out', '{tmp}', '--set', 'model.margin=-5'], 'model.margin: must be > 0'),
    (['train', '--out', '{tmp}', '--set', 'model.num_bases=-2'], 'model.num_bases: must be'),
    (['train', '--out', '{tmp}', '--set', 'model.hidden_channels=1e11'],
     'model.hidden_channels: must be <= 65536'),
    (['train', '--out', '{tmp}', '--set', 'training.mu=.nan'], 'training.mu: must be a finite'),
    (['train', '--out', '{tmp}', '--set', 'training.adv_temperature=-1'],
     'training.adv_temperature: must be >= 0'),
    (['train', '--out', '{tmp}', '--set', 'model.epsilon=-1'], 'model.epsilon: must be > 0'),
    (['train', '--out', '{tmp}', '--config', '{tmp}/dup.yaml'],
     "line 4: duplicate key 'training.lr' (first given on line 2)"),
    # '~' is the home directory in every path option (HOME is the case's directory)
    (['train', '--out', '~/file', *FAST], '{tmp}/file: exists and is a file'),
]

# issue 39: hostile input loses nothing, runs nothing, hangs nothing
BAD_ARGUMENTS += [
    (['evaluate', '--checkpoint', '{ck}', '--split', 'valid', '--out', '{ck_dir}/metrics.json'],
     'metrics.json: exists; choose a new path'),
    (['stats', '--json', '{ck_dir}/metrics.json'], 'metrics.json: exists; choose a new path'),
    (['train', '--out', '{tmp}/r', '--config', '{tmp}/bomb.yaml'], 'past 100,000 nodes'),
    (['train', '--out', '{tmp}/r', '--set', 'model.modalities=[&a [x,x,x,x,x,x,x,x,x,x], '
      '[*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], [*a]]'], 'expected a list of names'),
    (['stats', '--dataset', '{tmp}/bombkg'], 'past 100,000 nodes'),
    (['train', '--out', '{tmp}/r', '--config', '{tmp}/latin.yaml'],
     'latin.yaml:2: not UTF-8 text (byte 0xe9'),
    (['train', '--out', '{tmp}/r', '--set', 'model.modalities=[[image]]'],
     "model.modalities: expected a list of names, got [['image']]"),
    (['train', '--out', '{tmp}/r', '--set', 'dataset=123'],
     'dataset: expected a name or path, got 123'),
    (['train', '--out', '{tmp}/r', *FAST, '--set', 'model.hidden_channels=65536'],
     'model.hidden_channels=65536: the model needs more memory'),
    (['predict', '--checkpoint', '{ck}', '--head', '0', '--relation=--1'],
     "unknown relation '--1'"),
    (['predict', '--checkpoint', '{ck}', '--head', '0', '--relation', '\u00b2'],
     "unknown relation '\u00b2'"),
    (['predict', '--checkpoint', '{ck}', '--head', 'x' * 100_000, '--relation', '0'],
     "unknown entity 'xxxxxxxx"),
    (['train', '--out', '{tmp}/r', '--threads', '0'], 'training.threads: must be null or >= 1'),
]

#: cases that succeed, run by the same process: (argv, a line of stdout, a file made)
GOOD_ARGUMENTS = [
    ([], None, None),  # no command: the usage on stderr (exit 2, checked below)
    (['--version'], 'native-pyg ', None),
    (['predict', '--checkpoint', '{ck}', '--head', '0', '--relation', '0',
      '--k', '100000000000000000000'], 'top ', None),
    (['evaluate', '--checkpoint', '~/../run-link/model.pt', '--out', '~/m.json'], 'MRR',
     '{tmp}/m.json'),
]


#: nine levels of nine aliases each: 9^9 nodes from 10 lines (the "billion laughs")
ALIAS_BOMB = '{key}:\n  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n' + ''.join(
    f'  - &a{i} [{", ".join([f"*a{i - 1}"] * 9)}]\n' for i in range(1, 9))


@pytest.fixture(scope='module')
def bad_argument_runs(trained, tmp_path_factory):
    """Every case of BAD_ARGUMENTS, each in its own directory, run one after
    another by one ``native-pyg`` process (``tests/helpers/cli_cases.py``:
    a case's exit code and output are a process's), and the files of the
    trained run before and after all of them."""
    import torch

    def snapshot():
        return {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}

    cases, homes = [], []
    for i, (argv, *_) in enumerate(BAD_ARGUMENTS + GOOD_ARGUMENTS):
        tmp = tmp_path_factory.mktemp(f'case{i}')
        (tmp.parent / 'run-link').exists() or (tmp.parent / 'run-link').symlink_to(trained)
        (tmp / 'list.yaml').write_text('- 1\n- 2\n')
        (tmp / 'model5.yaml').write_text('model: 5\n')
        (tmp / 'dup.yaml').write_text('training:\n  lr: 0.01\n  epochs: 2\n  lr: 0.1\n')
        (tmp / 'file').write_text('not a directory\n')
        (tmp / 'bomb.yaml').write_text(ALIAS_BOMB.format(key='model:\n  modalities'))
        (tmp / 'latin.yaml').write_bytes('training:\n  # caf\u00e9\n  lr: 0.01\n'.encode('latin-1'))
        (tmp / 'bombkg').mkdir()
        (tmp / 'bombkg' / 'mmkg.yaml').write_text(ALIAS_BOMB.format(key='description'))
        torch.save(argparse.Namespace(payload='a pickled object'), tmp / 'pickled.pt')
        (tmp / 'latin1').mkdir()
        (tmp / 'latin1' / 'train.tsv').write_bytes(b'a\tr\tb\nJ\xfcrmala\tr\ta\n')
        for split in ('valid', 'test'):
            (tmp / 'latin1' / f'{split}.tsv').write_bytes(b'a\tr\tb\n')
        cases.append({'argv': [a.format(ck=trained / 'model.pt', ck_dir=trained, tmp=tmp)
                               for a in argv], 'home': str(tmp)})
        homes.append(tmp)
    work = tmp_path_factory.mktemp('cases')
    (work / 'cases.json').write_text(json.dumps(cases))
    before = snapshot()
    proc = subprocess.run([sys.executable, '-m', 'tests.helpers.cli_cases',
                           str(work / 'cases.json'), str(work / 'out.json')],
                          capture_output=True, text=True, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    return json.loads((work / 'out.json').read_text()), before, snapshot(), homes


@pytest.mark.parametrize('case', range(len(BAD_ARGUMENTS)),
                         ids=[' '.join(a[:3]) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_one_line_exit_2(bad_argument_runs, case):
    runs, before, after, homes = bad_argument_runs
    run, message = runs[case], BAD_ARGUMENTS[case][1].format(tmp=homes[case])
    assert run['code'] == 2, run['stderr']
    err = [l for l in run['stderr'].splitlines() if l.strip() and 'warning' not in l.lower()]
    assert len(err) == 1 and message in err[0], run['stderr']
    assert 'weights_only' not in run['stderr']  # never the advice to load unsafely
    assert after == before  # the existing run is untouched, byte for byte


@pytest.mark.parametrize('case', range(len(GOOD_ARGUMENTS)),
                         ids=[' '.join(a[:2]) or 'none' for a, *_ in GOOD_ARGUMENTS])
def test_commands_that_succeed_in_the_same_process(bad_argument_runs, case):
    runs, _, _, homes = bad_argument_runs
    i = len(BAD_ARGUMENTS) + case
    run, (argv, line, made) = runs[i], GOOD_ARGUMENTS[case]
    if not argv:  # the usage with the command list, exit 2
        assert run['code'] == 2
        assert all(c in run['stderr'] for c in ('stats', 'train', 'evaluate', 'predict'))
        return
    assert run['code'] == 0, run['stderr']
    assert run['stdout'].startswith(line) or line in run['stdout'], run['stdout']
    if argv[0] == '--version':
        from native_pyg import __version__
        assert run['stdout'].strip() == f'native-pyg {__version__}'
    if '--k' in argv:  # at most every entity, said as such
        lines = run['stdout'].splitlines()
        assert int(lines[0].split()[1]) == len(lines) - 1 < 10 ** 6
    if made:
        assert json.loads(Path(made.format(tmp=homes[i])).read_text())['both']['mrr'] > 0
        assert not (REPO / '~').exists()


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


def test_without_a_terminal_progress_is_one_plain_line_per_epoch(tmp_path, capfd):
    # in this process (pytest's captured streams are no terminal): a subprocess per run
    # would spend most of its time importing
    i = FAST.index('training.progress=false')
    fast = FAST[:i - 1] + FAST[i + 1:]  # without '--set training.progress=false'
    assert main(['train', '--out', str(tmp_path / 'run'), *fast]) == 0
    out, err = capfd.readouterr()
    lines = [l for l in out.splitlines() if l.startswith('epoch ')]
    assert [l.split()[1] for l in lines] == ['1/2', '2/2'] and 'valid MRR' in lines[0]
    assert '\r' not in out + err and '\x1b[' not in out + err
    assert len(out) + len(err) < 8000
    assert main(['train', '--quiet', '--out', str(tmp_path / 'quiet'), *fast]) == 0
    quiet_out, _ = capfd.readouterr()
    assert 'epoch 1/2' not in quiet_out and 'NativE(' not in quiet_out
    assert 'MRR' in quiet_out  # the final metrics still


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
    # the URL and the folder to copy the files into keep their case
    assert '/MKG-W/' in err[0] and str(tmp_path / 'MKG-W' / 'raw') in err[0]


def test_evaluate_protocols_and_a_sample_with_confidence_intervals(trained, tmp_path, capsys):
    # full ranking streamed over candidate chunks is tested against the in-memory
    # evaluator in tests/evaluation/test_streamed.py; here the flags reach it
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
