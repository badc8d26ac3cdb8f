"""torch.distributed: 2 CPU processes (Gloo) under torchrun, spawned from
the tests, against one process."""
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch.utils.data import DistributedSampler

from native_pyg.datasets import SyntheticMMKG
from native_pyg.pipeline import build_model
from native_pyg.training import RunConfig, Trainer, load_checkpoint
from native_pyg.training.distributed import current, shard_permutation
from tests.helpers.torchrun import REPO, torchrun

# per process: batch 256 on 2 ranks = 512 per step, as the single process
BUDGET = ['--config', str(REPO / 'examples' / 'configs' / 'synthetic.yaml'),
          '--set', 'model.hidden_channels=16', '--set', 'training.eval_every=2',
          '--set', 'training.num_negatives=16', '--quiet']
EPOCHS = 3
#: largest test-MRR gap (points) accepted between 2 ranks and 1 process
TOLERANCE = 3.0


def ddp_train(out, epochs, *extra):
    proc = torchrun('-m', 'native_pyg', 'train', '--dataset', 'synthetic', '--out', str(out),
                    *BUDGET, '--set', 'training.batch_size=256', '--epochs', str(epochs), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('ddp')
    # the straight run and the first part of the resumed one side by side (start-up, the
    # rendezvous and the evaluations leave the cores idle part of the time)
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(ddp_train, root / 'straight', EPOCHS),
                     pool.submit(ddp_train, root / 'resumed', EPOCHS - 1)]:
            done.result()
    ddp_train(root / 'resumed', EPOCHS, '--resume')
    return root


def test_shards_follow_distributed_sampler():
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    parts = [shard_permutation(perm, r, 3) for r in range(3)]
    assert {p.numel() for p in parts} == {4}
    assert set(torch.cat(parts).tolist()) == set(range(11))
    for r, part in enumerate(parts):
        sampler = DistributedSampler(range(11), num_replicas=3, rank=r, shuffle=False)
        assert part.tolist() == perm[list(sampler)].tolist()
    assert torch.equal(shard_permutation(perm, 0, 1), perm)
    assert current().world_size == 1 and current().is_main


def test_two_processes_write_one_run(runs):
    out = runs / 'straight'
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith('.')) == \
        ['curves.png', 'history.jsonl', 'last.pt', 'metrics.json', 'model.pt']
    assert not list(out.glob('.ckpt-*'))  # no temporary checkpoint left behind
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['world_size'] == 2 and metrics['epochs'] == EPOCHS
    history = [json.loads(line) for line in (out / 'history.jsonl').read_text().splitlines()]
    assert [h['world_size'] for h in history] == [2] * EPOCHS
    assert load_checkpoint(str(out / 'last.pt'))['world_size'] == 2


def test_two_processes_reach_one_process_accuracy(runs):
    data = SyntheticMMKG()[0]
    run = RunConfig.from_yaml(str(REPO / 'examples' / 'configs' / 'synthetic.yaml')).override(
        ['model.hidden_channels=16', 'training.eval_every=2', 'training.num_negatives=16',
         'training.batch_size=512', f'training.epochs={EPOCHS}', 'training.progress=false'])
    single = Trainer(build_model(data, run), data, run)
    single.fit()
    one = single.evaluate('test')['both']['mrr']
    two = json.loads((runs / 'straight' / 'metrics.json').read_text())['test']['both']['mrr']
    assert abs(100 * one - 100 * two) < TOLERANCE, (one, two)


def test_distributed_resume_restores_every_rank(runs):
    straight = load_checkpoint(str(runs / 'straight' / 'last.pt'))
    resumed = load_checkpoint(str(runs / 'resumed' / 'last.pt'))
    assert resumed['epoch'] == straight['epoch'] == EPOCHS
    for k, v in straight['model'].items():
        assert torch.equal(v, resumed['model'][k]), k
    lines = (runs / 'resumed' / 'history.jsonl').read_text().splitlines()
    assert len(lines) == EPOCHS


def test_sharded_evaluation_equals_one_process(runs, tmp_path):
    # metrics.json's test metrics were computed by the 2 ranks, each ranking half
    # of the queries, from the weights model.pt holds
    sharded = json.loads((runs / 'straight' / 'metrics.json').read_text())['test']
    from native_pyg.cli import main
    assert main(['evaluate', '--checkpoint', str(runs / 'straight' / 'model.pt'),
                 '--out', str(tmp_path / 'one.json')]) == 0
    assert sharded == json.loads((tmp_path / 'one.json').read_text())


def test_a_failing_rank_stops_the_others(tmp_path):
    start = time.time()
    proc = torchrun(str(REPO / 'tests' / 'helpers' / 'failing_rank.py'), 'train',
                    '--dataset', 'synthetic', '--out', str(tmp_path / 'run'), *BUDGET,
                    '--epochs', '2', timeout=180)
    assert proc.returncode != 0 and time.time() - start < 120
    assert 'rank 1 failed on purpose' in proc.stderr


def test_a_gnn_with_sampled_neighbourhoods_trains_on_two_processes(tmp_path):
    # with a structure stand-in: unused while DDP trains, then fitted by every rank alike
    out = tmp_path / 'gnn'
    ddp_train(out, 1, '--encoder', 'rgcn', '--num-neighbors', '5,5',
              '--set', 'training.eval_every=1', '--no-adversarial',
              '--set', 'model.structure_stand_in=true', '--set', 'training.stand_in_epochs=1')
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['world_size'] == 2 and 0 < metrics['test']['both']['mrr'] <= 1
    assert bool(load_checkpoint(str(out / 'model.pt'))['model']['stand_in.fitted'])
    from native_pyg.cli import main
    assert main(['evaluate', '--checkpoint', str(out / 'model.pt'),
                 '--out', str(tmp_path / 'one.json')]) == 0
    assert metrics['test'] == json.loads((tmp_path / 'one.json').read_text())


def test_under_torchrun_only_rank_0_reports_a_user_error(runs):
    # --out holds a run: rank 0 says so in one line; rank 1, which waited on
    # rank 0's check, stops without a traceback of its own
    proc = torchrun('-m', 'native_pyg', 'train', '--dataset', 'synthetic',
                    '--out', str(runs / 'straight'), *BUDGET, '--epochs', '1', timeout=180)
    assert proc.returncode != 0
    errors = [l for l in proc.stderr.splitlines() if l.startswith('native-pyg: error')]
    assert len(errors) == 1 and 'already holds a run' in errors[0]
    assert '[rank1]' not in proc.stderr and 'Connection closed' not in proc.stderr


EXIT_SCRIPT = '''
import atexit, os, sys
import torch
import torch.distributed as dist
from native_pyg.training.distributed import exit_process, finish
out = sys.argv[1]


class Finalised:  # a module global: its __del__ runs in the interpreter's finalisation
    def __del__(self, path=os.path.join(out, 'finalised'), open=open):
        open(path, 'w').close()


kept = Finalised()
atexit.register(lambda: open(os.path.join(out, 'atexit'), 'w').close())
if sys.argv[2] == 'group':
    dist.init_process_group('gloo', init_method='file://' + os.path.join(out, 'store'),
                            rank=0, world_size=1)
    dist.all_reduce(torch.ones(3))
    finish()
print('unflushed', end='')
exit_process(3)
'''


@pytest.mark.parametrize('group', ['group', 'none'])
def test_a_process_that_left_its_group_exits_without_the_finalisation(tmp_path, group):
    # after a process group, Gloo's threads may still drop tensors that need the GIL: the
    # interpreter's finalisation is skipped (the exit handlers and the streams are not)
    script = tmp_path / 'leave.py'
    script.write_text(EXIT_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), group], cwd=str(REPO),
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert proc.stdout == 'unflushed'
    assert (tmp_path / 'atexit').exists()
    assert (tmp_path / 'finalised').exists() == (group == 'none')
