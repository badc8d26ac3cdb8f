"""Seconds per training epoch on MKG-Y's real triples: one process against N
processes under torchrun (Gloo on CPUs, NCCL on GPUs), same global batch.

    python benchmarks/distributed_epoch.py --root DIR [--nproc 2] [--epochs 3]
        [--models rotate,native] [--device cpu]

DIR holds ``MKG-Y/raw/*2id.txt``. ``native`` is NativE (ReDAF + CoMAT) on a
text modality from the entity names (needs the ``text`` extra; encoded once
into the dataset's cache); ``rotate`` is structure only. Budget: dim 100,
32 negatives, global batch 1024 (1024 / N per process), no validation.
One process gets every core (torch's default threads); under torchrun each
process gets one thread per core it owns (``OMP_NUM_THREADS`` = cores / N).
Every run goes through ``native-pyg train`` in its own process(es); the
median epoch (from ``history.jsonl``, first epoch dropped) is reported, with
the ratio N-process / 1-process. Prints one JSON object.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import machine  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {'rotate': ['--modalities', 'none'],
          'native': ['--text-features', 'names']}


def epoch_seconds(args, model: str, nproc: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'run')
        train = ['-m', 'native_pyg', 'train', '--dataset', 'MKG-Y', '--root', args.root,
                 '--out', out, '--quiet', '--epochs', str(args.epochs),
                 '--device', args.device, *MODELS[model],
                 '--set', 'model.hidden_channels=100', '--set', 'training.num_negatives=32',
                 '--set', 'training.eval_every=0', '--set', 'model.margin=4.0',
                 '--set', f'training.batch_size={1024 // nproc}']
        env = {**os.environ, 'PYTHONPATH': REPO}
        if nproc == 1:
            cmd = [sys.executable, *train]
        else:
            env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or nproc) // nproc))
            cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
                   '--nproc_per_node', str(nproc), *train]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            sys.exit(f"{model} on {nproc} process(es) failed: "
                     f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        with open(os.path.join(out, 'history.jsonl')) as f:
            history = [json.loads(line) for line in f]
    seconds = [h['seconds'] for h in history][1:] or [history[0]['seconds']]
    return {'model': model, 'processes': nproc, 'world_size': history[-1]['world_size'],
            'seconds_per_epoch_median': round(statistics.median(seconds), 2),
            'epochs_timed': len(seconds)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--root', required=True)
    p.add_argument('--nproc', type=int, default=2)
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--models', default='rotate,native')
    p.add_argument('--device', default='cpu')
    args = p.parse_args()
    results = []
    for model in args.models.split(','):
        one = epoch_seconds(args, model, 1)
        many = epoch_seconds(args, model, args.nproc)
        many['ratio_to_one_process'] = round(many['seconds_per_epoch_median']
                                             / one['seconds_per_epoch_median'], 2)
        results += [one, many]
    print(json.dumps({'dataset': 'MKG-Y (real triples)', 'global_batch': 1024,
                      'machine': machine(), 'results': results}, indent=1))


if __name__ == '__main__':
    main()
