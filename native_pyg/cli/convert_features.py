"""``native-pyg convert-features``: feature files (one per modality, and
optionally its presence mask) written to a disk-backed feature store."""
from __future__ import annotations

import argparse
import os
from typing import Dict, List, Tuple

from native_pyg.cli.errors import CLIError
from native_pyg.cli.options import add_out_arg
from native_pyg.data.os_errors import os_error_message

HELP = 'write feature files to a disk-backed feature store (memory-mapped, read by entity id)'


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``convert-features``' options: the files, the store and its precision."""
    p.add_argument('files', nargs='+', metavar='MODALITY=PATH',
                   help='a [N, d] .npy or .pt file, or a directory of row chunks, per modality '
                        '(row i = entity i); MODALITY.mask=PATH gives its presence ([N] bool or '
                        '0/1 .npy or .pt; default: a row is missing when it is all zero)')
    add_out_arg(p, 'the store directory: new, or an empty directory (nothing is replaced)')
    p.add_argument('--dtype', default='float16', choices=['float16', 'float32'],
                   help='storage precision (default: float16, half the bytes)')
    p.add_argument('--chunk-rows', type=int, default=65536,
                   help='rows read and written at a time (default: 65536)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=cmd_convert_features)


def cmd_convert_features(args) -> int:
    from native_pyg.data.feature_files import convert_feature_files
    files, masks = feature_files(args.files)
    if args.chunk_rows < 1:
        raise CLIError(f"--chunk-rows {args.chunk_rows}: expected a positive number of rows")
    try:
        store = convert_feature_files(args.out, files, args.dtype, args.chunk_rows,
                                      progress=not args.quiet, masks=masks)
    except ValueError as e:
        raise CLIError(str(e)) from None
    except OSError as e:  # e.g. a full disk: a write's error names no file
        raise CLIError(os_error_message(e, e.filename or args.out)) from None
    print(f"{store!r}: {store.nbytes() / 2**20:,.2f} MiB on disk")
    return 0


def feature_files(pairs: List[str]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """The feature files and the mask files of ``MODALITY=PATH`` and
    ``MODALITY.mask=PATH`` arguments, by modality (``~`` expanded)."""
    files, masks = {}, {}
    for pair in pairs:
        modality, sep, path = pair.partition('=')
        if not sep or not modality or not path:
            raise CLIError(f"{pair!r}: expected MODALITY=PATH or MODALITY.mask=PATH, e.g. "
                           f"image=image.npy")
        modality, dot, kind = modality.partition('.')
        if dot and kind != 'mask':
            raise CLIError(f"{pair!r}: expected MODALITY=PATH or MODALITY.mask=PATH")
        target = masks if dot else files
        if modality in target:
            raise CLIError(f"{'the mask of ' if dot else ''}modality {modality!r} given twice")
        target[modality] = os.path.expanduser(path)
    if not files:
        raise CLIError("no feature file given (MODALITY=PATH, e.g. image=image.npy)")
    return files, masks
