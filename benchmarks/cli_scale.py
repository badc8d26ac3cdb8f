"""The whole command-line path on a large generated graph laid out as a
user's folder: ``stats``, ``train`` (validation on a sample every
``--steps-per-epoch`` steps), ``evaluate --protocol streamed`` on
``--queries`` test triples and ``complete`` for ``--queries`` heads; prints
one JSON line per command (seconds, CPU seconds, peak RSS of that command's own process)
and a summary line.

    python benchmarks/cli_scale.py --graph DIR --folder FOLDER --runs DIR \\
        [--encoder rgcn --num-neighbors 10,5] [--steps-per-epoch 200 --epochs 2]

``--graph`` is a graph of :func:`~native_pyg.datasets.large_synthetic.generate_large_mmkg`
(generated with ``--entities`` if absent). ``--folder`` receives it as a
user would lay it out (``examples/my_mmkg``): ``mmkg.yaml``, ``entities.txt``,
TSV splits by name and ``features/{image,text}.npy`` with ``.mask.npy``
(hard links to the graph's files where the file system allows, else
copies). Each command runs as its own program; its peak is the
``ru_maxrss`` its parent (this script, which imports neither torch nor
numpy) reads when it ends.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
NATIVE_PYG = [sys.executable, '-m', 'native_pyg']

LAYOUT = r"""
import json, os, os.path as osp, shutil, sys
import numpy as np
graph, folder = sys.argv[1], sys.argv[2]
meta = json.load(open(osp.join(graph, 'meta.json')))
n = int(meta['num_entities'])
tmp = folder + '.partial'
shutil.rmtree(tmp, ignore_errors=True)
os.makedirs(osp.join(tmp, 'features'))
with open(osp.join(tmp, 'entities.txt'), 'w') as f:
    for start in range(0, n, 1 << 20):
        f.write(''.join(f'entity_{i}\n' for i in range(start, min(start + (1 << 20), n))))
for split in ('train', 'valid', 'test'):
    rows = np.load(osp.join(graph, f'{split}.npy'), mmap_mode='r')
    with open(osp.join(tmp, f'{split}.tsv'), 'w') as f:
        for start in range(0, rows.shape[0], 1 << 20):
            f.write(''.join(f'entity_{h}\trel_{r}\tentity_{t}\n'
                            for h, r, t in rows[start:start + (1 << 20)].tolist()))
features = {}
for m in ('image', 'text'):
    for suffix in ('.npy', '.mask.npy'):
        src, dst = osp.join(graph, 'features', m + suffix), osp.join(tmp, 'features', m + suffix)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    features[m] = {'file': f'features/{m}.npy', 'mask': f'features/{m}.mask.npy'}
manifest = {'name': osp.basename(folder), 'format': 'tsv', 'entities': 'entities.txt',
            'splits': {s: f'{s}.tsv' for s in ('train', 'valid', 'test')},
            'features': features}
with open(osp.join(tmp, 'mmkg.yaml'), 'w') as f:
    json.dump(manifest, f, indent=1)  # JSON is YAML
test = np.load(osp.join(graph, 'test.npy'))
rel = int(np.bincount(test[:, 1]).argmax())
heads = np.unique(test[test[:, 1] == rel][:, 0])
heads = np.concatenate([heads, np.setdiff1d(test[:, 0], heads)])[:int(sys.argv[3])]
with open(osp.join(tmp, 'heads.txt'), 'w') as f:
    f.write(''.join(f'entity_{h}\n' for h in heads.tolist()))
with open(osp.join(tmp, 'relation.txt'), 'w') as f:
    f.write(f'rel_{rel}\n')
os.rename(tmp, folder)
"""


def run(name: str, cmd, env) -> dict:
    """Runs ``cmd``; its seconds and its own peak RSS (``wait4``)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    out = {'command': name, 'seconds': round(seconds, 1),
           'cpu_seconds': round(usage.ru_utime + usage.ru_stime, 1),
           'peak_rss_bytes': usage.ru_maxrss * 1024, 'exit_code': code,
           'argv': ' '.join(cmd[2:])}
    if code != 0:
        out['output_tail'] = output[-2000:]
    print(json.dumps(out), flush=True)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--graph', required=True)
    p.add_argument('--entities', type=int, default=300_000)
    p.add_argument('--folder', required=True)
    p.add_argument('--runs', required=True, help='where the run directories go')
    p.add_argument('--encoder', default='none', choices=['none', 'rgcn'])
    p.add_argument('--num-neighbors', default='10,5')
    p.add_argument('--steps-per-epoch', type=int, default=200)
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--eval-every', type=int, default=1, help='epochs between validations')
    p.add_argument('--eval-sample', type=int, default=500,
                   help='valid triples per validation, and test triples of the final test')
    p.add_argument('--queries', type=int, default=1000,
                   help='test triples of evaluate, and heads of complete')
    p.add_argument('--only', help='comma-separated commands (stats,train,evaluate,complete)')
    args = p.parse_args(argv)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    if not osp.exists(osp.join(args.graph, 'meta.json')):
        subprocess.run([sys.executable, '-c',
                        'import sys; sys.path.insert(0, sys.argv[1]); '
                        'from native_pyg.datasets.large_synthetic import generate_large_mmkg; '
                        'generate_large_mmkg(sys.argv[2], int(sys.argv[3]), progress=False)',
                        REPO, args.graph, str(args.entities)], check=True, env=env)
    if not osp.isdir(args.folder):
        start = time.perf_counter()
        subprocess.run([sys.executable, '-c', LAYOUT, args.graph, args.folder,
                        str(args.queries)], check=True, env=env)
        print(json.dumps({'layout_seconds': round(time.perf_counter() - start, 1)}), flush=True)
    meta = json.load(open(osp.join(args.graph, 'meta.json')))
    feature_bytes = sum(osp.getsize(osp.join(args.folder, 'features', f))
                        for f in os.listdir(osp.join(args.folder, 'features')))
    run_dir = osp.join(args.runs, f"{meta['num_entities']}-{args.encoder}")
    relation = open(osp.join(args.folder, 'relation.txt')).read().strip()
    threads = ['--threads', '1']
    train = [*NATIVE_PYG, 'train', '--dataset', args.folder, '--out', run_dir,
             '--epochs', str(args.epochs), '--quiet', *threads,
             '--set', 'model.hidden_channels=100', '--set', 'model.margin=6.0',
             '--set', 'training.lr=1e-3', '--set', 'training.batch_size=1024',
             '--set', 'training.num_negatives=128', '--set', 'training.shared_negatives=1024',
             '--set', 'training.table_optimizer=rowwise_adagrad',
             '--set', f'training.steps_per_epoch={args.steps_per_epoch}',
             '--set', f'training.eval_every={args.eval_every}',
             '--set', f'training.eval_sample={args.eval_sample}',
             '--set', f'training.test_sample={args.eval_sample}', '--set', 'training.compile=true']
    if args.encoder != 'none':
        train += ['--encoder', args.encoder, '--num-neighbors', args.num_neighbors]
    checkpoint = osp.join(run_dir, 'model.pt')
    candidates = osp.join(run_dir, 'candidates.tsv')
    commands = {
        'stats': [*NATIVE_PYG, 'stats', '--dataset', args.folder],
        'train': train,
        'evaluate': [*NATIVE_PYG, 'evaluate', '--checkpoint', checkpoint, '--protocol',
                     'streamed', '--eval-sample', str(args.queries), '--compile', *threads],
        'complete': [*NATIVE_PYG, 'complete', '--checkpoint', checkpoint, '--relation',
                     relation, '--heads', osp.join(args.folder, 'heads.txt'), '--k', '10',
                     '--out', candidates, '--compile', '--quiet', *threads],
    }
    only = args.only.split(',') if args.only else list(commands)
    if 'train' in only and osp.exists(run_dir):
        shutil.rmtree(run_dir)
    if 'complete' in only and osp.exists(candidates):
        os.remove(candidates)
    results = [run(name, cmd, env) for name, cmd in commands.items() if name in only]
    print(json.dumps({
        'entities': meta['num_entities'], 'train_triples': meta['counts']['train'],
        'feature_bytes': feature_bytes, 'encoder': args.encoder,
        'peak_rss_fraction_of_features': {r['command']: round(r['peak_rss_bytes'] / feature_bytes, 3)
                                          for r in results},
        'seconds': {r['command']: r['seconds'] for r in results},
        'cpu_seconds': {r['command']: r['cpu_seconds'] for r in results},
        'peak_rss_gb': {r['command']: round(r['peak_rss_bytes'] / 1e9, 2) for r in results},
        'all_exit_0': all(r['exit_code'] == 0 for r in results)}), flush=True)


if __name__ == '__main__':
    main()
