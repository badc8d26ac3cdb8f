"""Run under torchrun: ``native-pyg train`` in which rank 1 fails at its
third step (a crash mid-training while rank 0 waits in a collective)."""
import sys

import torch.distributed as dist

from native_pyg.cli import run
from native_pyg.training import Trainer

real = Trainer.train_step
calls = []


def failing(self, batch):
    calls.append(1)
    if dist.get_rank() == 1 and len(calls) == 3:
        raise RuntimeError('rank 1 failed on purpose')
    return real(self, batch)


Trainer.train_step = failing
run(sys.argv[1:])
