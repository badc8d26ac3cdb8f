"""One line for an :class:`OSError`: the path and the cause in words, as
the dataset loaders and the command line report it."""
from __future__ import annotations

import errno
from typing import Optional

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
    # strerror's capital goes ("No such file" -> "no such file"); a message of our own
    # (URLs, paths) keeps its case
    cause = _CAUSES.get(e.errno) or (e.strerror[:1].lower() + e.strerror[1:] if e.strerror
                                     else str(e))
    return f"{where}: {cause}" if where else cause
