"""What the ``native-pyg`` command tells a user when something fails: one
line, naming the file and the cause, never a traceback for a cause the user
can fix."""
from __future__ import annotations

import os
from typing import Optional


class CLIError(Exception):
    """An error the user can fix; printed as one line, exit code 2."""


def distributed_rank() -> Optional[int]:
    """This process's rank under ``torchrun`` with more than one process."""
    if int(os.environ.get('WORLD_SIZE', '1')) > 1:
        return int(os.environ.get('RANK', '0'))
    return None
