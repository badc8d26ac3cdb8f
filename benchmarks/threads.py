"""How many CPU threads to train with when other work shares the cores.

Trains the demo's NativE (``examples/configs/synthetic.yaml``, the embedded
synthetic MMKG) for ``--epochs`` epochs in a fresh ``native-pyg train``
process per setting, alone and beside ``--busy`` competing processes (each a
single-threaded loop of float32 matrix products, as another training job on
one core would be), and prints one JSON object: the median triples/s of
the epochs after the first, per setting and scenario, and each setting's
ratio to one thread in the same scenario.

    python benchmarks/threads.py --epochs 4 --threads 1,2,auto

Settings: a number is ``--threads N``; ``auto`` leaves the choice to
native_pyg (the cores the load average leaves free). ``auto`` reads the
one-minute load average, which follows a new competitor within about a
minute: the busy scenario waits ``--settle`` seconds before its runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSY = ("import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\n"
        "while True:\n    a = torch.tanh(a @ a)\n")


def run(setting: str, epochs: int, workdir: str) -> dict:
    out = tempfile.mkdtemp(dir=workdir)
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    cmd = [sys.executable, '-m', 'native_pyg', 'train', '--dataset', 'synthetic', '--config',
           os.path.join(REPO, 'examples', 'configs', 'synthetic.yaml'), '--epochs', str(epochs),
           '--set', 'training.eval_every=0', '--set', 'training.progress=false', '--quiet',
           '--out', os.path.join(out, 'run')]
    if setting != 'auto':
        cmd += ['--threads', setting]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    with open(os.path.join(out, 'run', 'history.jsonl')) as f:
        rates = [json.loads(line)['triples_per_s'] for line in f if line.strip()]
    with open(os.path.join(out, 'run', 'metrics.json')) as f:
        threads = json.load(f)['trained']['threads']
    return {'triples_per_s': statistics.median(rates[1:] or rates), 'threads': threads}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--threads', default='1,2,auto')
    p.add_argument('--busy', type=int, default=1, help='competing single-core processes')
    p.add_argument('--settle', type=float, default=75.0,
                   help='seconds the competitors run before the busy runs')
    args = p.parse_args()
    settings = args.threads.split(',')
    result = {'cores': len(os.sched_getaffinity(0)), 'epochs': args.epochs,
              'busy_processes': args.busy, 'scenarios': {}}
    with tempfile.TemporaryDirectory() as workdir:
        for scenario in ('quiet', 'busy'):
            competitors = []
            if scenario == 'quiet':  # the load average of earlier work must have decayed
                deadline = time.time() + 300
                while os.getloadavg()[0] > 0.4 and time.time() < deadline:
                    time.sleep(5)
            if scenario == 'busy':
                competitors = [subprocess.Popen([sys.executable, '-c', BUSY])
                               for _ in range(args.busy)]
                time.sleep(args.settle)
            try:
                rows = {s: dict(run(s, args.epochs, workdir), load_1min=os.getloadavg()[0])
                        for s in settings}
            finally:
                for c in competitors:
                    c.kill()
                    c.wait()
            one = rows.get('1', {}).get('triples_per_s')
            for row in rows.values():
                row['vs_1_thread'] = round(row['triples_per_s'] / one, 3) if one else None
            result['scenarios'][scenario] = rows
            if scenario == 'quiet':
                time.sleep(1)
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
