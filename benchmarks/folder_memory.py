"""Peak memory of reading a user's folder of TSV triples (names, not ids).

Writes ``--triples`` random training triples over ``--entities`` names and
``--relations`` relations (plus 5,000 valid and test rows) to a temporary
folder, then processes it with ``FolderMMKG`` in a fresh child process per
checkout and prints one JSON object with each child's own peak resident
memory (``VmHWM``) and seconds:

    python benchmarks/folder_memory.py --entities 300000 --triples 3000000 \\
        [--compare /path/to/another/checkout]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = """import sys, time, warnings
sys.path.insert(0, sys.argv[1])
warnings.simplefilter('ignore')
from native_pyg.datasets import FolderMMKG
start = time.perf_counter()
FolderMMKG(sys.argv[2], log=False, force_reload=True)
seconds = time.perf_counter() - start
peak = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM'))
print(peak, seconds)
"""


def write_folder(path: str, entities: int, relations: int, triples: int) -> None:
    rng = random.Random(0)
    for split, rows in (('train', triples), ('valid', 5000), ('test', 5000)):
        with open(os.path.join(path, f'{split}.tsv'), 'w') as f:
            for _ in range(rows):
                f.write(f"entity_{rng.randrange(entities)}\trel_{rng.randrange(relations)}\t"
                        f"entity_{rng.randrange(entities)}\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--entities', type=int, default=300_000)
    p.add_argument('--relations', type=int, default=50)
    p.add_argument('--triples', type=int, default=3_000_000)
    p.add_argument('--compare', help='another checkout, measured the same way')
    args = p.parse_args()
    out = {'entities': args.entities, 'triples': args.triples, 'runs': {}}
    with tempfile.TemporaryDirectory() as folder:
        write_folder(folder, args.entities, args.relations, args.triples)
        out['tsv_bytes'] = sum(os.path.getsize(os.path.join(folder, f))
                               for f in os.listdir(folder))
        for checkout in [REPO] + ([os.path.abspath(args.compare)] if args.compare else []):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, '-c', CHILD, checkout, folder],
                                  capture_output=True, text=True, check=True)
            peak, seconds = proc.stdout.split()
            out['runs'][checkout] = {'peak_rss_bytes': int(peak),
                                     'seconds': round(float(seconds), 1),
                                     'wall_seconds': round(time.perf_counter() - start, 1)}
    print(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
