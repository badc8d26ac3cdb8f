"""native_pyg/training/table_shards.py and ``native-pyg export``: a run
trained with its entity table sharded over 2 CPU processes (Gloo, under
torchrun) writes one shard per process with a manifest, resumes exactly
after a SIGKILL, resumes on 3 processes (re-sharded, from its shards or
from its consolidated last.pt), and is consolidated into one checkpoint
that evaluate and predict read."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from native_pyg.cli import main
from native_pyg.training import load_checkpoint
from tests.helpers.torchrun import REPO, torchrun

pytest.importorskip('torchrec', reason='the distributed extra (make install-distributed)')

EPOCHS = 3
TRAIN = ['-m', 'native_pyg', 'train', '--shard-table', '--dataset', 'synthetic', '--quiet',
         '--set', 'model.hidden_channels=8', '--set', 'training.num_negatives=8',
         '--set', 'training.batch_size=512', '--set', 'training.eval_every=2',
         '--set', 'training.lr=0.05', '--epochs', str(EPOCHS)]


def train(out, *extra, nproc=2):
    proc = torchrun(*TRAIN, '--out', str(out), *extra, nproc=nproc, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def train_then_kill(out):
    """The same run, SIGKILLed (the launcher and its processes) once its
    first last.pt is written."""
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1'}
    proc = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                             '--nproc_per_node', '2', *TRAIN, '--out', str(out)], cwd=str(REPO),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (out / 'last.pt').exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return load_checkpoint(str(out / 'last.pt'))['epoch']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('sharded')
    with ThreadPoolExecutor(2) as pool:
        straight = pool.submit(train, root / 'straight')
        killed_at = pool.submit(train_then_kill, root / 'killed').result()
        straight.result()
    train(root / 'killed', '--resume')
    return root, killed_at


def exported(tmp_path, run, name):
    out = tmp_path / f'{name}.pt'
    assert main(['export', '--checkpoint', str(run), '--out', str(out)]) == 0
    return load_checkpoint(str(out))


def test_each_process_writes_its_shard_and_rank_0_the_manifest(runs):
    root, _ = runs
    for name in ('last', 'model'):
        state = load_checkpoint(str(root / 'straight' / f'{name}.pt'))
        manifest = state['table_shards']
        assert manifest['world_size'] == 2 and manifest['ranges'] == [
            {'entity_emb.': [0, 1000]}, {'entity_emb.': [1000, 2000]}]
        assert not [k for k in state['model'] if k.startswith('entity_emb.')]  # in the shards
        tags = os.listdir(root / 'straight' / f'{name}.shards')
        assert tags == [manifest['tag']]  # the earlier epochs' shards are gone
        assert manifest['files'] == [f"{manifest['tag']}/rank0000{r}-of-00002.pt"
                                     for r in range(2)]


def test_a_killed_run_resumes_exactly(runs, tmp_path):
    root, killed_at = runs
    assert 1 <= killed_at < EPOCHS  # killed mid-run, not after it ended
    history = [[json.loads(line)['loss'] for line in (root / run / 'history.jsonl')
                .read_text().splitlines()] for run in ('straight', 'killed')]
    assert history[0] == history[1] and len(history[0]) == EPOCHS
    want, got = (exported(tmp_path, root / run / 'last.pt', run) for run in ('straight',
                                                                             'killed'))
    assert want['model'].keys() == got['model'].keys()
    for key, value in want['model'].items():
        assert torch.equal(value, got['model'][key]), key


def test_a_run_resumes_on_three_processes_resharded(runs, tmp_path):
    root, _ = runs
    shutil.copytree(root / 'straight', tmp_path / 'three')
    (tmp_path / 'three' / 'model.pt').unlink()
    train(tmp_path / 'three', '--resume', nproc=3)  # nothing left to train: the best, re-sharded
    manifest = load_checkpoint(str(tmp_path / 'three' / 'model.pt'))['table_shards']
    assert manifest['world_size'] == 3 and manifest['ranges'][2] == {'entity_emb.': [1334, 2000]}
    want = exported(tmp_path, root / 'straight' / 'model.pt', 'two')
    got = exported(tmp_path, tmp_path / 'three' / 'model.pt', 'three')
    assert torch.equal(want['model']['entity_emb.weight'], got['model']['entity_emb.weight'])
    assert json.loads((tmp_path / 'three' / 'metrics.json').read_text())['test'] == \
        json.loads((root / 'straight' / 'metrics.json').read_text())['test']


def test_an_exported_last_pt_resumes_on_three_processes(runs, tmp_path):
    root, _ = runs
    (tmp_path / 'three').mkdir()
    assert main(['export', '--checkpoint', str(root / 'straight' / 'last.pt'), '--out',
                 str(tmp_path / 'three' / 'last.pt')]) == 0
    assert 'table_shards' not in load_checkpoint(str(tmp_path / 'three' / 'last.pt'))
    train(tmp_path / 'three', '--resume', nproc=3)  # its best weights, each process its rows
    want = exported(tmp_path, root / 'straight' / 'model.pt', 'two')
    got = exported(tmp_path, tmp_path / 'three' / 'model.pt', 'three')
    assert torch.equal(want['model']['entity_emb.weight'], got['model']['entity_emb.weight'])
    assert torch.equal(want['table_accumulators']['model']['entity_emb.'],
                       got['table_accumulators']['model']['entity_emb.'])


def test_export_then_evaluate_and_predict_on_one_process(runs, tmp_path, capsys):
    root, _ = runs
    out = tmp_path / 'one.pt'
    assert main(['export', '--checkpoint', str(root / 'straight'), '--out', str(out)]) == 0
    assert 'joined from 2 shards' in capsys.readouterr().out
    state = load_checkpoint(str(out))
    assert state['exported_from']['world_size'] == 2 and 'table_shards' not in state
    assert state['model']['entity_emb.weight'].shape == (2000, 16)  # RotatE: 2 x 8
    # the sharded evaluation at the end of training ranked as one process does
    assert main(['evaluate', '--checkpoint', str(out), '--out', str(tmp_path / 'm.json')]) == 0
    one = json.loads((tmp_path / 'm.json').read_text())
    sharded = json.loads((root / 'straight' / 'metrics.json').read_text())['test']
    assert (one.pop('protocol'), sharded.pop('protocol')) == ('full', 'streamed')
    assert one == sharded
    assert main(['predict', '--checkpoint', str(out), '--head', '0', '--relation', '0',
                 '--k', '3']) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) >= 3
    assert main(['export', '--checkpoint', str(root / 'straight'), '--out', str(out)]) == 2
    assert 'exists; choose a new path (nothing is overwritten)' in capsys.readouterr().err


def test_a_sharded_checkpoint_read_whole_or_a_missing_or_wrong_shard_is_one_line(runs, tmp_path, capsys):
    root, _ = runs
    model_pt = root / 'straight' / 'model.pt'
    assert main(['evaluate', '--checkpoint', str(model_pt)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f'its entity table is sharded over 2 processes; consolidate it first: '
                        f'native-pyg export --checkpoint {model_pt} --out model.pt'), err
    shutil.copytree(root / 'straight', tmp_path / 'run')
    tag = load_checkpoint(str(model_pt))['table_shards']['tag']
    gone = tmp_path / 'run' / 'model.shards' / tag / 'rank00001-of-00002.pt'
    gone.unlink()
    assert main(['export', '--checkpoint', str(tmp_path / 'run'), '--out',
                 str(tmp_path / 'x.pt')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f'the table shard {gone} is missing' in err[0], err
    assert not (tmp_path / 'x.pt').exists()
    # another process's shard in its place
    shutil.copy(gone.parent / 'rank00000-of-00002.pt', gone)
    assert main(['export', '--checkpoint', str(tmp_path / 'run'), '--out',
                 str(tmp_path / 'x.pt')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f'the table shard {gone} is not shard 1 of 2' in err[0], err


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_nodes_of_two_processes_train_and_evaluate_one_run(tmp_path):
    """The launch of docs/scaling.md, as two "nodes" on this machine: two
    torchrun launchers of 2 processes each meeting at a localhost
    rendezvous; the features in a disk store, each process reading the rows
    its steps and its candidates need."""
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1'}
    port, out = free_port(), tmp_path / 'run'
    nodes = [subprocess.Popen(
        [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '2', '--node_rank', str(i),
         '--nproc_per_node', '2', '--rdzv_backend', 'c10d', '--rdzv_id', 'two-nodes',
         '--rdzv_endpoint', f'127.0.0.1:{port}', *TRAIN[:-1], '1', '--out', str(out),
         '--set', 'data.feature_store=disk', '--root', str(tmp_path / 'data')],
        cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    try:
        results = [node.communicate(timeout=400) for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for node, (_, err) in zip(nodes, results):
        assert node.returncode == 0, err[-3000:]
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['world_size'] == 4 and metrics['test']['protocol'] == 'streamed'
    manifest = load_checkpoint(str(out / 'model.pt'))['table_shards']
    assert manifest['world_size'] == 4
    assert [r['entity_emb.'] for r in manifest['ranges']] == [[0, 500], [500, 1000],
                                                               [1000, 1500], [1500, 2000]]
    assert load_checkpoint(str(out / 'model.pt'))['feature_store']  # trained from the store
    printed = ''.join(o for o, _ in results)
    assert printed.count('synthetic test (filtered') == 1  # rank 0 alone reports
