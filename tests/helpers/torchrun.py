"""Two CPU processes (Gloo) under torchrun, spawned from a test."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch.distributed as dist

from native_pyg.training.distributed import exit_process, finish

REPO = Path(__file__).resolve().parents[2]


def torchrun(*args, timeout=240, nproc=2) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node NPROC ARGS`` from the
    repository, one thread per process; its output captured."""
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node',
           str(nproc), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(REPO))


def worker_reports(worker: str, out: Path, timeout=240, nproc=2) -> list:
    """Runs ``tests/helpers/WORKER OUT`` under :func:`torchrun` (it must
    succeed) and returns what each rank wrote to ``OUT/rank<r>.json``."""
    proc = torchrun(str(REPO / 'tests' / 'helpers' / worker), str(out), timeout=timeout,
                    nproc=nproc)
    # which ranks wrote their report tells a crash at exit from one mid-run
    written = sorted(p.name for p in out.glob('rank*.json'))
    assert proc.returncode == 0, f"reports written: {written}\n{proc.stderr[-3000:]}"
    return [json.loads((out / f'rank{r}.json').read_text()) for r in range(nproc)]


def report_and_exit(out, found: dict) -> None:
    """The end of a worker of :func:`worker_reports`: writes ``found`` to
    ``OUT/rank<r>.json``, leaves the process group and exits as the
    command does (:func:`native_pyg.training.distributed.exit_process`)."""
    with open(os.path.join(out, f'rank{dist.get_rank()}.json'), 'w') as f:
        json.dump(found, f)
    finish()
    exit_process(0)
