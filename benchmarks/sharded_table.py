"""Memory and step time of an entity table sharded over processes
(``model.table: sharded``), launched as several "nodes" on one machine.

    python benchmarks/sharded_table.py --entities 20000000 [--dim 100]
        [--nodes 2] [--nproc 2] [--steps 5] [--queries 200] [--compare-ddp]

Every configuration runs as ``--nodes`` torchrun launchers of ``--nproc``
processes each, meeting at a localhost rendezvous (the multi-machine launch
of docs/scaling.md), one thread per process. Each process builds the same
random structure-only graph (``--entities`` entities, ``--triples`` training
triples over 100 relations, ``--queries`` valid triples), the run's model
and trainer through the library (RotatE, entity dim ``--dim``, batch 1024,
32 negatives), takes 2 warm-up and ``--steps`` timed training steps and one
sharded evaluation of the valid queries (filtered, both directions), then
reports its own peak RSS (``VmHWM``: a fresh count in each process).

The same command runs on a 15,000-entity graph of the same settings; the
figure the goal is about is each process's peak RSS minus that small run's,
as a fraction of the whole table's bytes (``N * dim * 4``). With
``--compare-ddp`` the small graph also runs with the table replicated on
every process (DDP, Adam on the table): the step-time ratio sharded /
replicated, in the same run. Prints one JSON object.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import machine, peak_rss_bytes  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = 15000


class LazyNames:
    """``'entity_<i>'`` for ``i < n``, without holding the strings."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return (f'entity_{i}' for i in range(self.n))

    def __getitem__(self, i: int) -> str:
        return f'entity_{i}'


def worker(args) -> None:
    import torch
    import torch.distributed as dist

    from native_pyg.builders import build_model
    from native_pyg.config import RunConfig
    from native_pyg.data.schema import build_mmkg
    from native_pyg.training import Trainer
    from native_pyg.training.distributed import finish

    dist.init_process_group('gloo')
    rank = dist.get_rank()
    gen = torch.Generator().manual_seed(0)
    n, r = args.entities, 100
    train = torch.stack([torch.randint(0, n, (args.triples,), generator=gen),
                         torch.randint(0, r, (args.triples,), generator=gen),
                         torch.randint(0, n, (args.triples,), generator=gen)], dim=1)
    valid = train[torch.randperm(args.triples, generator=gen)[:args.queries]]
    data = build_mmkg(n, r, train, valid=valid, test=valid[:1], validate=False,
                      entity_names=LazyNames(0))
    data['entity'].name = LazyNames(n)  # not 20 M strings (1.4 GB per process)
    sets = [f'model.hidden_channels={args.dim // 2}', 'model.modalities=[]',
            'training.adversarial=false', 'training.batch_size=1024',
            'training.num_negatives=32', 'training.eval_every=0', 'training.progress=false',
            'training.lr=0.05', 'training.filter_negatives=false']
    sets += (['model.table=sharded', 'training.table_optimizer=rowwise_adagrad']
             if args.table == 'sharded' else ['training.table_optimizer=adam'])
    run = RunConfig().override(sets)
    start = time.perf_counter()
    trainer = Trainer(build_model(data, run), data, run)
    setup = time.perf_counter() - start
    batches = train[torch.randint(0, args.triples, (args.steps + 2, 1024), generator=gen)]
    seconds = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        trainer.train_step(batch)
        if i >= 2:
            seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    metrics = trainer.evaluate('valid')
    evaluation = time.perf_counter() - start
    table = trainer.model.entity_emb
    held = list(table.row_range) if table.sharded else [0, n]
    peak = peak_rss_bytes()
    with open(os.path.join(args.out, f'rank{rank}.json'), 'w') as f:
        json.dump({'rank': rank, 'peak_rss_bytes': peak, 'rows_held': held,
                   'setup_s': setup, 'step_s': statistics.median(seconds),
                   'eval_s': evaluation, 'eval_queries': 2 * len(valid),
                   'valid_mrr': metrics['both']['mrr']}, f)
    finish()  # after a barrier


def launch(args, entities: int, table: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': REPO}
        cmd = lambda node: [  # noqa: E731
            sys.executable, '-m', 'torch.distributed.run', '--nnodes', str(args.nodes),
            '--node_rank', str(node), '--nproc_per_node', str(args.nproc),
            '--rdzv_backend', 'c10d', '--rdzv_id', 'bench', '--rdzv_endpoint',
            f'127.0.0.1:{port}', os.path.abspath(__file__), '--worker', '--out', out,
            '--entities', str(entities), '--table', table, '--dim', str(args.dim),
            '--triples', str(args.triples), '--steps', str(args.steps),
            '--queries', str(args.queries)]
        start = time.perf_counter()
        nodes = [subprocess.Popen(cmd(i), env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for i in range(args.nodes)]
        errors = [node.communicate()[1] for node in nodes]
        for node, err in zip(nodes, errors):
            if node.returncode:
                raise SystemExit(f"{entities} entities, {table}: a launcher failed\n{err[-3000:]}")
        ranks = [json.load(open(os.path.join(out, f))) for f in sorted(os.listdir(out))]
    return {'entities': entities, 'table': table, 'wall_s': time.perf_counter() - start,
            'processes': ranks}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--entities', type=int, default=20_000_000)
    p.add_argument('--dim', type=int, default=100)
    p.add_argument('--triples', type=int, default=2_000_000)
    p.add_argument('--nodes', type=int, default=2)
    p.add_argument('--nproc', type=int, default=2)
    p.add_argument('--steps', type=int, default=5)
    p.add_argument('--queries', type=int, default=200)
    p.add_argument('--compare-ddp', action='store_true')
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--table', default='sharded', help=argparse.SUPPRESS)
    p.add_argument('--out', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        from native_pyg.training.distributed import exit_process
        worker(args)
        exit_process(0)
    small = launch(args, SMALL, 'sharded')
    large = launch(args, args.entities, 'sharded')
    table_bytes = args.entities * args.dim * 4
    base = max(r['peak_rss_bytes'] for r in small['processes'])
    extra = [r['peak_rss_bytes'] - base for r in large['processes']]
    out = {'machine': machine(), 'entities': args.entities, 'dim': args.dim,
           'processes': args.nodes * args.nproc, 'table_bytes': table_bytes,
           'peak_rss_minus_small_bytes': extra,
           'largest_fraction_of_table': max(extra) / table_bytes,
           'goal_fraction': 0.30, 'small': small, 'large': large}
    if args.compare_ddp:
        replicated = launch(args, SMALL, 'replicated')
        out['replicated_small'] = replicated
        step = lambda run: statistics.median(r['step_s'] for r in run['processes'])  # noqa
        out['step_ratio_sharded_over_replicated'] = step(small) / step(replicated)
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
