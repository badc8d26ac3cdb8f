"""What the ``native-pyg`` command tells a user when something fails: one
line, naming the file and the cause, never a traceback for a cause the user
can fix."""
from __future__ import annotations

import errno
import os
from typing import Optional


class CLIError(Exception):
    """An error the user can fix; printed as one line, exit code 2."""


#: errno -> the cause in words
_CAUSES = {
    errno.EACCES: 'permission denied',
    errno.EPERM: 'operation not permitted',
    errno.EROFS: 'read-only file system',
    errno.ENOSPC: 'no space left on device',
    errno.EDQUOT: 'disk quota exceeded',
    errno.ENOENT: 'no such file or directory',
    errno.ENOTDIR: 'a part of the path is a file, not a directory',
    errno.EISDIR: 'is a directory',
    errno.EEXIST: 'exists',
    errno.ENAMETOOLONG: 'file name too long',
}


def os_error_message(e: OSError, path: Optional[str] = None) -> str:
    """``'PATH: cause'`` for an :class:`OSError` (its own file name unless
    ``path`` is given)."""
    where = path or e.filename or ''
    cause = _CAUSES.get(e.errno) or (e.strerror or str(e)).lower()
    return f"{where}: {cause}" if where else cause


def distributed_rank() -> Optional[int]:
    """This process's rank under ``torchrun`` with more than one process."""
    if int(os.environ.get('WORLD_SIZE', '1')) > 1:
        return int(os.environ.get('RANK', '0'))
    return None
