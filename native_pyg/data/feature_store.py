r"""Per-modality feature stores on disk: one memory-mapped ``.npy`` file per
modality (``float16`` or ``float32``) with its presence mask beside it,
served through PyG's :class:`~torch_geometric.data.FeatureStore` API, so a
graph's features need not fit in memory: a training step reads the rows of
its own entities only.

Layout of a store directory::

    features.json            {"num_entities": N, "modalities": {m: {"dim": d, "dtype": ...}}}
    <modality>.npy           [N, d] rows, memory-mapped
    <modality>.mask.npy      [N] bool presence

:class:`FeatureStoreWriter` writes a store in chunks of rows and never holds
a modality in memory; :class:`DiskFeatureStore` reads it.
"""
from __future__ import annotations

import errno
import json
import os
import os.path as osp
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import FeatureStore, TensorAttr

from native_pyg.data.atomic_files import atomic_directory


META = 'features.json'
#: storage dtypes of a store
DTYPES = {'float16': np.float16, 'float32': np.float32}
#: the two tensors of each modality (``TensorAttr.attr_name``)
ROWS, MASK = 'x', 'mask'

Rows = Union[Tensor, np.ndarray]


def as_numpy(rows: Rows) -> np.ndarray:
    return rows.detach().cpu().numpy() if isinstance(rows, Tensor) else np.asarray(rows)


class FeatureStoreWriter:
    r"""Writes a feature store directory, one modality at a time, from
    chunks of consecutive rows (the first chunk holds rows ``0, 1, ...``),
    so that no modality is ever held in memory whole. Each modality's mask
    is the given one, or else "the row is not all zero".

    .. code-block:: python

        writer = FeatureStoreWriter('store', num_entities=N, dtype='float16')
        writer.write('image', chunks_of_image_rows, dim=4096)
        writer.write('text', [text_rows])            # one chunk is fine too
        writer.close()                               # writes features.json

    Args:
        root (str): The store directory (created; must not hold a store).
        num_entities (int): Rows of every modality :math:`N`.
        dtype (str, optional): ``'float16'`` (half the bytes; about three
            significant digits) or ``'float32'``. (default: ``'float16'``)
    """

    def __init__(self, root: str, num_entities: int, dtype: str = 'float16'):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if num_entities < 1:
            raise ValueError(f"num_entities must be positive, got {num_entities}")
        if osp.exists(osp.join(root, META)):
            raise ValueError(f"{root}: holds a feature store already; write to a new directory")
        os.makedirs(root, exist_ok=True)
        self.root, self.num_entities, self.dtype = root, int(num_entities), dtype
        self.modalities: Dict[str, Dict[str, object]] = {}

    def write(self, modality: str, chunks: Iterable[Rows], dim: Optional[int] = None,
              masks: Optional[Iterable[Rows]] = None) -> None:
        r"""Writes one modality from ``chunks`` of ``[k, d]`` rows (and
        optionally ``masks``, chunks of ``[k]`` bool aligned with them).
        ``dim`` is the feature size (default: the first chunk's). Rows that
        are not finite are an error naming the modality and the row."""
        if not modality or '.' in modality or '/' in modality or modality in self.modalities:
            raise ValueError(f"invalid or repeated modality name {modality!r}")
        chunks = iter(chunks)
        masks = iter(masks) if masks is not None else None
        first = next(chunks, None)
        if first is None:
            raise ValueError(f"modality {modality!r}: no rows given")
        first = as_numpy(first)
        dim = int(first.shape[1] if dim is None else dim)
        dtype = np.dtype(DTYPES[self.dtype])
        # plain appends, not a writable map: written pages never count as this process's
        # memory; 'x' mode: a file already there (a user's own, a source) is never replaced
        paths = [osp.join(self.root, f'{modality}{ext}') for ext in ('.npy', '.mask.npy')]
        for path in paths:
            if osp.lexists(path):
                raise ValueError(f"{path}: exists; a feature store is written to a new "
                                 f"directory (nothing there was changed)")
        with open(paths[0], 'xb') as fx, open(paths[1], 'xb') as fm:
            for f, shape, kind in ((fx, (self.num_entities, dim), dtype),
                                   (fm, (self.num_entities,), np.dtype(np.bool_))):
                np.lib.format.write_array_header_1_0(f, {
                    'descr': np.lib.format.dtype_to_descr(kind), 'fortran_order': False,
                    'shape': shape})
            start, chunk = 0, first
            while chunk is not None:
                chunk = as_numpy(chunk)
                if chunk.ndim != 2 or chunk.shape[1] != dim:
                    raise ValueError(f"modality {modality!r}: rows {start}...: expected "
                                     f"[k, {dim}], got {list(chunk.shape)}")
                stop = start + chunk.shape[0]
                if stop > self.num_entities:
                    raise ValueError(f"modality {modality!r}: more than {self.num_entities} rows")
                finite = np.isfinite(chunk).all(axis=1)
                if not finite.all():
                    raise ValueError(f"modality {modality!r}: row {start + int(np.argmin(finite))}"
                                     f" is not finite")
                if masks is not None:
                    present = as_numpy(next(masks)).astype(bool).reshape(-1)
                    if present.shape[0] != chunk.shape[0]:
                        raise ValueError(f"modality {modality!r}: a mask chunk of "
                                         f"{present.shape[0]} entries for {chunk.shape[0]} rows "
                                         f"(rows {start}...)")
                else:
                    present = (chunk != 0).any(axis=1)
                rows = chunk.astype(dtype)  # a copy: the caller's rows stay as they are
                rows[~present] = 0  # a missing row is never read, and stored as zeros
                fx.write(memoryview(np.ascontiguousarray(rows)).cast('B'))  # no bytes copy
                fm.write(memoryview(np.ascontiguousarray(present)).cast('B'))
                start, chunk = stop, next(chunks, None)
        if start != self.num_entities:
            raise ValueError(f"modality {modality!r}: {start} rows written, "
                             f"{self.num_entities} expected")
        self.modalities[modality] = {'dim': dim, 'dtype': self.dtype}

    def write_with_masks(self, modality: str, pairs: Iterable[Tuple[Rows, Rows]],
                         dim: Optional[int] = None) -> int:
        r"""Writes one modality from ``(rows [k, d], mask [k])`` chunk pairs
        (a chunk and its presence made together) and returns the number of
        present rows; see :meth:`write`."""
        pending: List[np.ndarray] = []
        present = [0]

        def rows():
            for x, mask in pairs:
                mask = as_numpy(mask).astype(bool).reshape(-1)
                present[0] += int(mask.sum())
                pending.append(mask)
                yield x

        def masks():
            while True:  # write asks for a chunk's mask right after the chunk
                yield pending.pop(0)

        self.write(modality, rows(), dim=dim, masks=masks())
        return present[0]

    def close(self) -> str:
        """Writes ``features.json`` (atomically) and returns its path; a
        store without it is not a store."""
        if not self.modalities:
            raise ValueError(f"{self.root}: no modality was written")
        path = osp.join(self.root, META)
        tmp = f'{path}.tmp'
        with open(tmp, 'w') as f:
            json.dump({'num_entities': self.num_entities, 'modalities': self.modalities}, f,
                      indent=1)
        os.replace(tmp, path)
        return path


def write_feature_store(root: str, features: Mapping[str, Rows],
                        masks: Optional[Mapping[str, Rows]] = None, dtype: str = 'float16',
                        chunk_rows: int = 65536) -> 'DiskFeatureStore':
    r"""Writes in-memory (or memory-mapped) ``features`` ``{m: [N, d_m]}``
    and ``masks`` ``{m: [N]}`` to a store at ``root``, ``chunk_rows`` rows
    at a time, and opens it."""
    features, masks = dict(features), dict(masks or {})
    sizes = {m: int(x.shape[0]) for m, x in features.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"every modality needs the same number of rows, got {sizes}")
    num = next(iter(sizes.values()))
    writer = FeatureStoreWriter(root, num, dtype)
    for m, x in features.items():
        starts = range(0, num, chunk_rows)
        mask = masks.get(m)
        writer.write(m, (x[s:s + chunk_rows] for s in starts),
                     masks=None if mask is None else (mask[s:s + chunk_rows] for s in starts))
    writer.close()
    return DiskFeatureStore(root)


class DiskFeatureStore(FeatureStore):
    r"""A read-only :class:`~torch_geometric.data.FeatureStore` over a store
    directory written by :class:`FeatureStoreWriter`. Group names are
    modalities, attribute names ``'x'`` (rows, returned as ``float32``)
    and ``'mask'``; an ``index`` reads those rows only:

    .. code-block:: python

        store = DiskFeatureStore('store')
        rows = store.get_tensor('image', 'x', index=torch.tensor([3, 17]))  # [2, 4096]
        mask = store['image', 'mask', None]                                  # [N] bool

    Args:
        root (str): The store directory.
    """

    def __init__(self, root: str):
        super().__init__()
        path = osp.join(root, META)
        if not osp.exists(path):
            raise ValueError(f"{root}: not a feature store (no {META}; write one with "
                             f"'native-pyg convert-features')")
        with open(path) as f:
            meta = json.load(f)
        self.root = root
        self.num_entities = int(meta['num_entities'])
        self.dims: Dict[str, int] = {m: int(v['dim']) for m, v in meta['modalities'].items()}
        self.storage_dtype: Dict[str, str] = {m: v['dtype'] for m, v in meta['modalities'].items()}
        self._maps: Dict[Tuple[str, str], np.ndarray] = {}
        for m in self.dims:
            for attr, suffix in ((ROWS, ''), (MASK, '.mask')):
                file = osp.join(root, f'{m}{suffix}.npy')
                try:
                    self._maps[m, attr] = np.load(file, mmap_mode='r')
                except (OSError, ValueError) as e:
                    short = 'mmap length is greater than file size' in str(e)
                    raise ValueError(f"{file}: " + (
                        "shorter than its header says: the feature store was cut short after "
                        "it was written; write it again" if short else f"unreadable ({e})")
                    ) from None
            expected = (self.num_entities, self.dims[m])
            if self._maps[m, ROWS].shape != expected \
                    or self._maps[m, MASK].shape != (self.num_entities,):
                raise ValueError(f"{root}: modality {m!r} files do not match {META} "
                                 f"(rows {self._maps[m, ROWS].shape}, expected {expected})")

    @property
    def modalities(self) -> List[str]:
        """The modality names, in the order they were written."""
        return list(self.dims)

    def nbytes(self) -> int:
        """Bytes of the row and mask files on disk."""
        return sum(int(a.nbytes) for a in self._maps.values())

    def identity(self) -> str:
        """A short digest of the store that changes when it is rewritten: its
        ``features.json``, every file's size and its first and last 64 KiB
        (cheap at any size; a store moved or copied keeps it)."""
        import hashlib
        digest = hashlib.sha256()
        with open(osp.join(self.root, META), 'rb') as f:
            digest.update(f.read())
        for (m, attr), array in sorted(self._maps.items()):
            size = osp.getsize(array.filename)
            digest.update(f'{m}.{attr}:{size};'.encode())
            with open(array.filename, 'rb') as f:
                digest.update(f.read(65536))
                f.seek(max(0, size - 65536))
                digest.update(f.read(65536))
        return digest.hexdigest()[:16]

    def _get_tensor(self, attr: TensorAttr) -> Optional[Tensor]:
        array = self._maps.get((attr.group_name, attr.attr_name))
        if array is None:
            return None
        out = self._read(array, attr.index)
        return out.float() if attr.attr_name == ROWS else out

    def stored_rows(self, modality: str, index=None) -> Tensor:
        """Feature rows of ``modality`` in the dtype they are stored in
        (float16 by default; :meth:`get_tensor` gives float32), for
        readers that cast them later, a block at a time."""
        array = self._maps.get((modality, ROWS))
        if array is None:
            raise KeyError(f"{self.root}: no modality {modality!r} (it has {self.modalities})")
        return self._read(array, index)

    @staticmethod
    def _read(array: np.memmap, index) -> Tensor:
        if isinstance(index, Tensor):
            index = index.cpu().numpy()
        # rows are read from the file, never through the map: mapped pages would
        # count as this process's memory for as long as the map lives
        span = _span(index, array.shape[0])
        return torch.from_numpy(_read_rows(array, *span) if span is not None
                                else _read_index(array, index))

    def _put_tensor(self, tensor: Tensor, attr: TensorAttr) -> bool:
        raise ValueError(f"{self.root}: a DiskFeatureStore is read-only; write a new store "
                         f"with FeatureStoreWriter")

    def _remove_tensor(self, attr: TensorAttr) -> bool:
        raise ValueError(f"{self.root}: a DiskFeatureStore is read-only")

    def _get_tensor_size(self, attr: TensorAttr) -> Optional[Tuple[int, ...]]:
        array = self._maps.get((attr.group_name, attr.attr_name))
        return None if array is None else tuple(array.shape)

    def get_all_tensor_attrs(self) -> List[TensorAttr]:
        return [TensorAttr(m, a) for m, a in self._maps]

    def __repr__(self) -> str:
        dims = ', '.join(f'{m}: {d} ({self.storage_dtype[m]})' for m, d in self.dims.items())
        return f'{self.__class__.__name__}({self.root!r}, {self.num_entities}, {{{dims}}})'


def _span(index, num_rows: int) -> Optional[Tuple[int, int]]:
    """``(start, stop)`` when ``index`` (``None``, a slice or ids) is a run
    of consecutive rows, else ``None``."""
    if index is None:
        return 0, num_rows
    if isinstance(index, slice):
        start, stop, step = index.indices(num_rows)
        return (start, max(start, stop)) if step == 1 else None
    index = np.asarray(index)
    if index.ndim != 1 or index.size < 2 or index[0] < 0:
        return None
    if int(index[-1]) - int(index[0]) + 1 != index.size or not (np.diff(index) == 1).all():
        return None
    return int(index[0]), int(index[-1]) + 1


def _read_rows(array: np.memmap, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a memory-mapped ``.npy`` read from its file."""
    shape = (stop - start, *array.shape[1:])
    row_bytes = array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    out = np.empty(shape, dtype=array.dtype)
    with open(array.filename, 'rb') as f:
        f.seek(array.offset + start * row_bytes)
        got = f.readinto(memoryview(out).cast('B'))
    if got != out.nbytes:  # never rows left uninitialised
        raise truncated(array.filename, start + got // max(row_bytes, 1))
    return out


def truncated(path: str, row: int) -> OSError:
    """The error of a store file that ends before its rows do (cut short
    after it was written): an :class:`OSError` naming it, so that a run
    reports it in one line and keeps its last checkpoint."""
    return OSError(errno.EIO, f"ends before row {row}: the feature store was cut short after "
                              f"it was written; write it again", path)


def _read_index(array: np.memmap, index) -> np.ndarray:
    """Rows ``index`` of a memory-mapped ``.npy`` read from its file: the
    span they lie in when they are dense in it (e.g. the present rows of a
    candidate chunk), else row by row."""
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if index.size == 0:
        return np.empty((0, *array.shape[1:]), dtype=array.dtype)
    first, last = int(index.min()), int(index.max())
    if first < 0 or last >= array.shape[0]:
        raise IndexError(f"row ids outside [0, {array.shape[0]})")
    if last - first + 1 <= 4 * index.size:
        return _read_rows(array, first, last + 1)[index - first]
    row_bytes = array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    out = np.empty((index.size, *array.shape[1:]), dtype=array.dtype)
    flat = memoryview(out).cast('B')
    fd = os.open(array.filename, os.O_RDONLY)
    try:
        for i, row in enumerate(index.tolist()):
            part = flat[i * row_bytes:(i + 1) * row_bytes]
            if os.preadv(fd, [part], array.offset + row * row_bytes) != row_bytes:
                raise truncated(array.filename, row)
    finally:
        os.close(fd)
    return out


def store_graph_features(data, root: str, modalities: Optional[List[str]] = None,
                         dtype: str = 'float32') -> DiskFeatureStore:
    r"""A feature store holding the feature rows and masks of an MMKG
    :class:`~torch_geometric.data.HeteroData` (its ``modalities``, default
    all), written once under ``root/<digest>`` where the digest covers the
    rows, masks and storage dtype, and reused by later calls on the same
    features. ``float32`` storage keeps every value exactly."""
    import hashlib
    from native_pyg.data.schema import modalities as data_modalities
    names = data_modalities(data) if modalities is None else list(modalities)
    if not names:
        raise ValueError("data.feature_store=disk: the graph has no feature modality to store")
    digest = hashlib.sha256(dtype.encode())
    for m in names:
        digest.update(m.encode())
        digest.update(data[m].x.detach().float().contiguous().numpy())
        digest.update(data[m].mask.numpy())
    path = osp.join(root, digest.hexdigest()[:16])
    if osp.exists(osp.join(path, META)):
        return DiskFeatureStore(path)
    try:
        with atomic_directory(path) as tmp:  # a complete store or none
            write_feature_store(tmp, {m: data[m].x for m in names},
                                {m: data[m].mask for m in names}, dtype=dtype)
    except OSError:
        if not osp.exists(osp.join(path, META)):
            raise
        # another process stored the same features first: theirs are these rows
    return DiskFeatureStore(path)
