r"""A user's feature files into a feature store, a chunk of rows at a time:
``native-pyg convert-features`` (:func:`convert_feature_files`: ``.npy`` /
``.pt`` files or directories of row chunks, masks given or "not all
zero") and a dataset folder's files (:func:`write_feature_file`, with the
presence rules of :func:`~native_pyg.data.readers.read_feature_file`).
No file is ever read whole, and a store is written beside its place and
moved in complete."""
from __future__ import annotations

import os
import os.path as osp
from typing import Iterable, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from native_pyg.data.atomic_files import atomic_directory
from native_pyg.data.feature_store import (DiskFeatureStore, FeatureStoreWriter, Rows,
                                           as_numpy)
from native_pyg.data.safe_load import load_pt

#: float32 bytes of one chunk of rows read from a user's file (64 MiB)
CHUNK_BYTES = 2 ** 26


def _row_source(path: str) -> Tuple[int, int, Iterable[Rows]]:
    """``(rows, dim, chunk_reader)`` of a feature file: a ``.npy`` (read a
    slice at a time), a ``.pt`` tensor, or a directory of ``.npy`` / ``.pt``
    chunks taken in name order."""
    if osp.isdir(path):
        parts = sorted(f for f in os.listdir(path) if f.endswith(('.npy', '.pt')))
        if not parts:
            raise ValueError(f"{path}: a directory of chunks needs .npy or .pt files")
        shapes = [_check_rows(osp.join(path, f), _open_rows(osp.join(path, f))).shape
                  for f in parts]
        if len({s[1:] for s in shapes}) != 1:
            raise ValueError(f"{path}: chunks of different shapes {sorted(set(shapes))}")
        return (sum(s[0] for s in shapes), shapes[0][1],
                (_open_rows(osp.join(path, f)) for f in parts))
    rows = _check_rows(path, _open_rows(path))
    return rows.shape[0], rows.shape[1], [rows]


def _check_rows(path: str, rows) -> Rows:
    """``rows`` if they are a ``[rows >= 1, dim >= 1]`` matrix of real numbers."""
    if rows.ndim != 2 or 0 in rows.shape:
        raise ValueError(f"{path}: expected a [rows, dim] matrix with at least one row and "
                         f"column, got shape {list(rows.shape)}")
    if not isinstance(rows, Tensor) and not (np.issubdtype(rows.dtype, np.floating)
                                             or np.issubdtype(rows.dtype, np.integer)):
        raise ValueError(f"{path}: expected numbers, got dtype {rows.dtype.str}")
    return rows


class NpyRows:
    """The rows of a C-order ``.npy`` file, read from the file a slice at a
    time (``rows[start:stop]``). Pages of a memory map would count as the
    process's resident memory as they are read, a file's worth in all;
    reads leave them to the page cache."""

    def __init__(self, path: str):
        with open(path, 'rb') as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran or dtype.hasobject:
            raise ValueError("expected a C-order array of numbers")
        self.path, self.shape, self.dtype = path, tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))
        if osp.getsize(path) < self.offset + self.size * self.dtype.itemsize:
            raise ValueError(f"the file is truncated: {osp.getsize(path)} bytes for shape "
                             f"{list(self.shape)} of {self.dtype}")

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("NpyRows reads row slices")
        start, stop, _ = index.indices(self.shape[0])
        stop = max(start, stop)
        row = int(np.prod(self.shape[1:], dtype=np.int64))
        with open(self.path, 'rb') as f:
            f.seek(self.offset + start * row * self.dtype.itemsize)
            out = np.fromfile(f, self.dtype, (stop - start) * row)
        return out.reshape((stop - start, *self.shape[1:]))

    def __array__(self, dtype=None, copy=None):
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype)


def _open_rows(path: str):
    if path.endswith('.npy'):
        try:
            return NpyRows(path)
        except (OSError, ValueError) as e:
            try:  # e.g. a Fortran-order array: memory-mapped
                return np.load(path, mmap_mode='r')
            except (OSError, ValueError):
                raise ValueError(f"{path}: not a readable .npy file ({e})") from None
    if path.endswith(('.pt', '.pth')):
        rows = load_pt(path, 'a feature file', mmap=True)  # memory-mapped where it can be
        if not isinstance(rows, Tensor) or not rows.is_floating_point() or \
                rows.layout != torch.strided:
            raise ValueError(f"{path}: expected a dense float tensor [rows, dim]")
        return rows
    raise ValueError(f"{path}: expected a .npy, .pt or .pth file, or a directory of them")


def _read_mask(path: str, num_rows: int) -> np.ndarray:
    """A presence mask file (``.npy`` / ``.pt``, bool or 0/1, ``[num_rows]``)."""
    mask = _open_rows(path) if path.endswith('.npy') else load_pt(path, 'a mask file')
    mask = as_numpy(mask)
    if mask.ndim != 1 or mask.shape[0] != num_rows:
        raise ValueError(f"{path}: expected a mask of {num_rows} entries (one per row), got "
                         f"shape {list(mask.shape)}")
    if mask.dtype != np.bool_:
        if not np.issubdtype(mask.dtype, np.number) or not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{path}: a mask holds bool or 0/1 values")
    return np.asarray(mask, dtype=np.bool_)


def feature_file_dtype(path: str) -> str:
    """The dtype name of a feature file's rows (``'float16'``, ...),
    without reading them."""
    rows = _open_rows(path)
    return str(rows.dtype).replace('torch.', '')


def chunk_rows_for(dim: int, budget: int = CHUNK_BYTES) -> int:
    """Rows of ``dim`` float32 values in ``budget`` bytes (at least 1)."""
    return max(1, min(65536, budget // max(1, 4 * int(dim))))


def write_feature_file(writer: FeatureStoreWriter, modality: str, path: str,
                       num_entities: int, nan_rows: str = 'error',
                       zero_rows_missing: bool = True, mask: Optional[Tensor] = None,
                       chunk_rows: Optional[int] = None) -> int:
    r"""Streams one modality's feature file (``.npy`` read a slice at a
    time, :class:`NpyRows`; ``.pt`` / ``.pth`` weights-only and
    memory-mapped where it can be) into ``writer``, ``chunk_rows`` rows at
    a time (default: :data:`CHUNK_BYTES` of float32 rows), with the presence rules of
    :func:`~native_pyg.data.readers.read_feature_file`: rows outside
    ``mask`` (``[N]`` bool) are missing, rows holding NaN/Inf are an error
    naming the row (``nan_rows='error'``) or missing, and without a mask
    all-zero rows are missing (``zero_rows_missing``). The file is never
    read whole. Returns the number of present rows.

    Raises:
        ValueError: One line naming the file (and the row) at fault.
    """
    from native_pyg.data.readers import MMKGFormatError
    try:
        rows = _open_rows(path)
    except ValueError as e:
        raise MMKGFormatError(str(e)) from None
    if rows.ndim != 2 or 0 in rows.shape:
        raise MMKGFormatError(f"{path}: expected a 2-D array [num_entities, d] with d >= 1, got "
                              f"shape {tuple(rows.shape)}")
    floating = (rows.is_floating_point() if isinstance(rows, Tensor)
                else np.issubdtype(rows.dtype, np.floating))
    if not floating:
        raise MMKGFormatError(f"{path}: expected floating-point features, got {rows.dtype}")
    if rows.shape[0] != num_entities:
        raise MMKGFormatError(f"{path}: has {rows.shape[0]} rows but the dataset has "
                              f"{num_entities} entities")
    given = None if mask is None else as_numpy(mask).astype(bool)
    chunk_rows = chunk_rows or chunk_rows_for(rows.shape[1])

    def chunks():
        for start in range(0, num_entities, chunk_rows):
            x = as_numpy(rows[start:start + chunk_rows]).astype(np.float32)
            keep = np.ones(x.shape[0], bool) if given is None else given[start:start + x.shape[0]]
            finite = np.isfinite(x).all(axis=1)
            bad = np.flatnonzero(keep & ~finite)
            if bad.size and nan_rows != 'missing':
                raise MMKGFormatError(f"{path}: row {start + int(bad[0])} holds NaN/Inf values; "
                                      f"pass nan_rows='missing' (CLI: --nan-rows missing) to "
                                      f"treat such rows as missing")
            present = keep & finite
            if zero_rows_missing and given is None:
                present &= (x != 0).any(axis=1)
            x[~present] = 0
            yield x, present

    return writer.write_with_masks(modality, chunks(), dim=int(rows.shape[1]))


def _with_mask(chunks: Iterable[Rows], mask: np.ndarray):
    """``(rows, mask rows)`` of consecutive row chunks."""
    start = 0
    for rows in chunks:
        stop = start + rows.shape[0]
        yield rows, mask[start:stop]
        start = stop


def _inside(path: str, directory: str) -> bool:
    path, directory = osp.realpath(path), osp.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def convert_feature_files(out: str, files: Mapping[str, str], dtype: str = 'float16',
                          chunk_rows: int = 65536, progress: bool = True,
                          masks: Optional[Mapping[str, str]] = None) -> DiskFeatureStore:
    r"""Converts a user's feature files, ``{modality: path}`` (each a
    ``[N, d_m]`` ``.npy`` or ``.pt`` file, or a directory of row chunks), to
    a new store at ``out``, ``chunk_rows`` rows at a time with a progress
    bar. Every modality needs the same :math:`N` (row ``i`` = entity ``i``).

    ``masks`` ``{modality: path}`` gives a modality's presence (a ``.npy`` /
    ``.pt`` of ``[N]`` bool or 0/1); without one, a row is missing when it
    is all zero. ``out`` must not exist, or be an empty directory: the
    store is written beside it and moved in whole, so a source file is never
    read and written at once, nothing in ``out`` is replaced, and a killed
    conversion leaves no half store.
    """
    from tqdm.auto import tqdm
    masks = dict(masks or {})
    unknown = sorted(set(masks) - set(files))
    if unknown:
        raise ValueError(f"a mask for {unknown} but no feature file of that modality")
    for m, path in [*files.items(), *masks.items()]:
        if _inside(path, out):
            raise ValueError(f"{path}: lies inside the output directory {out}; write the store "
                             f"to a new directory (nothing was changed)")
    if osp.lexists(out) and not (osp.isdir(out) and not os.listdir(out)):
        raise ValueError(f"{out}: exists and is not an empty directory; write the store to a "
                         f"new directory (nothing was changed)")
    sources = {m: _row_source(p) for m, p in files.items()}
    counts = {m: s[0] for m, s in sources.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"every modality needs one row per entity; rows per file: {counts}")
    num = next(iter(counts.values()))
    presence = {m: _read_mask(p, num) for m, p in masks.items()}
    with atomic_directory(out) as tmp:
        writer = FeatureStoreWriter(tmp, num, dtype)
        for m, (_, dim, parts) in sources.items():
            bar = tqdm(total=num, desc=f'{m} -> {dtype}', unit='row', unit_scale=True,
                       disable=None if progress else True)
            def chunks(parts=parts, bar=bar):
                for part in parts:
                    for s in range(0, part.shape[0], chunk_rows):
                        rows = part[s:s + chunk_rows]
                        bar.update(rows.shape[0])
                        yield rows

            mask = presence.get(m)
            if mask is None:  # present: not all zero (the writer's rule)
                writer.write(m, chunks(), dim=dim)
            else:
                writer.write_with_masks(m, _with_mask(chunks(), mask), dim=dim)
            bar.close()
        writer.close()
    return DiskFeatureStore(out)
