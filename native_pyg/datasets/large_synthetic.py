r"""A large generated multi-modal KG, written to disk in chunks: benchmark
graphs of 300 k to 10 M entities with 4096-d image and 384-d text features
that are never held in memory whole.

The model behind the graph (types, positions, relation kinds, latents and
features) is described in :mod:`native_pyg.datasets.large_synthetic_model`;
the triple stage (dedupe, valid/test split) is
:mod:`native_pyg.datasets.large_synthetic_triples`.

Everything is drawn from ``numpy.random.default_rng([seed, stream, block])``
per fixed block of 1,024 entities (or 262,144 facts), so a graph is
byte-identical for the same arguments whatever ``chunk_rows`` (the write
granularity only), and an entity's rows can be recomputed alone
(:func:`large_mmkg_entities`).

Files under ``root``::

    train.npy, valid.npy, test.npy   int64 [E, 3] (head, relation, tail) rows;
                                      train sorted, without duplicates
    features/                         a DiskFeatureStore: image, text (+ masks)
    meta.json                         arguments, counts, generator version;
                                      written last: a graph without it is incomplete

Load one with :func:`load_large_mmkg`.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import shutil
import tempfile
from collections.abc import Sequence
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import torch
from torch_geometric.data import HeteroData

from native_pyg.data.atomic_files import atomic_file
from native_pyg.data.feature_store import DTYPES, DiskFeatureStore, FeatureStoreWriter
from native_pyg.data.schema import ENTITY, REL, validate_mmkg
from native_pyg.datasets.large_synthetic_model import BLOCK, KINDS, MODALITIES, GraphSpec
from native_pyg.datasets.large_synthetic_triples import SPLIT_FILES, write_triples

#: bumped whenever the same arguments would give different files
VERSION = 1
FORMAT = 'native_pyg.large_synthetic_mmkg'
META = 'meta.json'
FEATURES = 'features'


# -- features -----------------------------------------------------------------
def _feature_chunks(spec: GraphSpec, modality: str, chunk_rows: int,
                    bar) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """``(rows, mask)`` of rows ``0, 1, ...`` in chunks of ``chunk_rows``,
    assembled from the fixed random blocks. The chunk buffer is reused (the
    writer has written a chunk before it asks for the next)."""
    w = spec.weights(modality)
    buf = np.empty((min(chunk_rows, spec.n), spec.dims[modality]), DTYPES[spec.dtype])
    cached, rows, present = -1, None, None
    for start in range(0, spec.n, chunk_rows):
        stop = min(spec.n, start + chunk_rows)
        out, mask = buf[:stop - start], np.empty(stop - start, bool)
        at = start
        while at < stop:
            b = at // BLOCK
            if b != cached:
                rows, present = spec.rows(modality, b, w)
                cached = b
            lo = at - b * BLOCK
            hi = min(stop, spec.block_range(b)[1]) - b * BLOCK
            np.copyto(out[at - start:at - start + hi - lo], rows[lo:hi], casting='same_kind')
            mask[at - start:at - start + hi - lo] = present[lo:hi]
            at += hi - lo
        bar.update(stop - start)
        yield out, mask


def _features(spec: GraphSpec, root: str, chunk_rows: int, progress: bool) -> Dict[str, Dict]:
    from tqdm.auto import tqdm
    writer = FeatureStoreWriter(root, spec.n, spec.dtype)
    info = {}
    for m in MODALITIES:
        with tqdm(total=spec.n, desc=f'{m} features', unit='ent', unit_scale=True,
                  disable=None if progress else True) as bar:
            present = writer.write_with_masks(m, _feature_chunks(spec, m, chunk_rows, bar),
                                              dim=spec.dims[m])
        info[m] = {'dim': spec.dims[m], 'present': present}
    writer.close()
    return info


# -- the public API -------------------------------------------------------------
def _arguments(num_entities, num_relations, triples_per_entity, image_dim, text_dim,
               missing_rate, latent_dim, valid_triples, test_triples, dtype,
               seed) -> Dict[str, object]:
    checks = {'num_entities': (num_entities, 2), 'num_relations': (num_relations, 1),
              'image_dim': (image_dim, 1), 'text_dim': (text_dim, 1),
              'latent_dim': (latent_dim, 1), 'valid_triples': (valid_triples, 0),
              'test_triples': (test_triples, 0), 'seed': (seed, 0)}
    for name, (value, low) in checks.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if not 0.0 <= float(missing_rate) < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate!r}")
    if not float(triples_per_entity) > 0:
        raise ValueError(f"triples_per_entity must be positive, got {triples_per_entity!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if num_entities * num_entities * num_relations >= 2 ** 63:
        raise ValueError(f"{num_entities} entities x {num_relations} relations is too large "
                         f"for int64 triple keys")
    return {'num_entities': int(num_entities), 'num_relations': int(num_relations),
            'triples_per_entity': float(triples_per_entity), 'image_dim': int(image_dim),
            'text_dim': int(text_dim), 'missing_rate': float(missing_rate),
            'latent_dim': int(latent_dim), 'valid_triples': int(valid_triples),
            'test_triples': int(test_triples), 'dtype': str(dtype), 'seed': int(seed)}


def _read_meta(root: str) -> Optional[Dict[str, object]]:
    path = osp.join(root, META)
    if not osp.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def is_large_mmkg(path: str) -> bool:
    """Whether ``path`` holds a graph :func:`generate_large_mmkg` finished."""
    try:
        meta = _read_meta(path) if osp.isdir(path) else None
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get('format') == FORMAT


def _known_names() -> set:
    return {META, FEATURES, *SPLIT_FILES.values()}


def generate_large_mmkg(root: str, num_entities: int, num_relations: int = 500,
                        triples_per_entity: float = 6.4, image_dim: int = 4096,
                        text_dim: int = 384, missing_rate: float = 0.3, latent_dim: int = 32,
                        valid_triples: int = 5000, test_triples: int = 5000,
                        dtype: str = 'float16', chunk_rows: int = 65536, seed: int = 0,
                        progress: bool = True) -> str:
    r"""Generates a large synthetic multi-modal KG (see the module
    docstring of :mod:`native_pyg.datasets.large_synthetic_model` for
    what it models) into ``root`` and returns ``root``.

    Memory stays far below the graph: per-entity scalars (at most about 64
    bytes an entity), one partition of the triples (about :math:`2^{23}`
    keys) at a time, and one chunk of ``chunk_rows`` feature rows plus the
    writer's copies of it (about 2 GB in all for 65,536 rows of 4096-d
    ``float16``; a smaller ``chunk_rows`` needs less).
    The graph is written to a fresh temporary directory beside ``root`` and
    moved into place once complete (``meta.json`` last), so a half-written
    graph never looks complete.

    If ``root`` already holds a complete graph of the same arguments it is
    reused as it is; of other arguments, a :class:`ValueError` is raised.
    ``chunk_rows`` and ``progress`` do not change the files.

    Args:
        root (str): The graph directory.
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations. (default: :obj:`500`)
        triples_per_entity (float): Training triples per entity; the
            training split holds exactly ``round(triples_per_entity * N)``
            distinct triples. (default: :obj:`6.4`, as ogbl-wikikg2)
        image_dim, text_dim (int): Feature sizes. (default: :obj:`4096`,
            :obj:`384`)
        missing_rate (float): Share of entities without each modality,
            drawn independently per modality. (default: :obj:`0.3`)
        latent_dim (int): Size of the latent vectors behind the features.
            (default: :obj:`32`)
        valid_triples, test_triples (int): Sizes of the evaluation splits,
            drawn from the same facts, removed from train, and keeping all
            their entities and relations in train. (default: :obj:`5000`)
        dtype (str): Feature storage dtype, ``'float16'`` or ``'float32'``.
        chunk_rows (int): Feature rows per write. (default: :obj:`65536`)
        seed (int): The same seed (and arguments) gives byte-identical files.
        progress (bool): Show progress bars. (default: :obj:`True`)
    """
    args = _arguments(num_entities, num_relations, triples_per_entity, image_dim, text_dim,
                      missing_rate, latent_dim, valid_triples, test_triples, dtype, seed)
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) \
            or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    root = str(root)
    existing = _check_existing(root, args)
    if existing:
        return root
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(osp.abspath(root))}.tmp-', dir=parent)
    os.chmod(tmp, 0o755)
    try:
        spec = GraphSpec(args)
        work = osp.join(tmp, '_work')
        os.makedirs(work)
        counts = write_triples(spec, tmp, work, progress)
        shutil.rmtree(work)
        modalities = _features(spec, osp.join(tmp, FEATURES), int(chunk_rows), progress)
        meta = {
            'format': FORMAT, 'version': VERSION, 'args': args,
            'num_entities': spec.n, 'num_relations': spec.r, 'num_types': spec.num_types,
            'counts': counts, 'modalities': modalities,
            'relation_kinds': {k: int((spec.kind == i).sum()) for i, k in enumerate(KINDS)},
            'relations': {'kind': [KINDS[k] for k in spec.kind.tolist()],
                          'inverse_of': spec.inverse_of().tolist()},
            'files': {**SPLIT_FILES, 'features': FEATURES},
            'bytes': _size(tmp),
        }
        with atomic_file(osp.join(tmp, META), 'w', sync=True) as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        _move_into_place(tmp, root, args)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _size(path: str) -> int:
    return sum(osp.getsize(osp.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _check_existing(root: str, args: Dict[str, object]) -> bool:
    """True if ``root`` holds a complete graph of ``args``; raises if it
    holds one of other arguments, or files that are not a graph's."""
    meta = _read_meta(root)
    if meta is not None:
        if meta.get('format') != FORMAT:
            raise ValueError(f"{root}: {META} is not a large synthetic MMKG's; use another root")
        theirs = {**meta.get('args', {}), 'version': meta.get('version')}
        ours = {**args, 'version': VERSION}
        diff = [f'{k} {theirs.get(k)!r} (asked {ours[k]!r})' for k in ours
                if theirs.get(k) != ours[k]]
        if diff:
            raise ValueError(f"{root}: holds a graph generated with other arguments: "
                             f"{', '.join(diff)}; use another root or delete it")
        return True
    if osp.exists(root):
        if not osp.isdir(root):
            raise ValueError(f"{root}: exists and is not a directory")
        foreign = sorted(set(os.listdir(root)) - _known_names())
        if foreign:
            raise ValueError(f"{root}: incomplete graph directory holds other files "
                             f"({', '.join(foreign[:3])}); use another root")
    return False


def _move_into_place(tmp: str, root: str, args: Dict[str, object]) -> None:
    if osp.exists(root):  # an incomplete graph (checked): set aside, then removed
        trash = tempfile.mkdtemp(prefix=f'.{osp.basename(osp.abspath(root))}.old-',
                                 dir=osp.dirname(osp.abspath(root)))
        os.rename(root, osp.join(trash, 'old'))
        try:
            os.rename(tmp, root)
        finally:
            shutil.rmtree(trash, ignore_errors=True)
        return
    try:
        os.rename(tmp, root)
    except OSError:  # another process finished first
        if not _check_existing(root, args):
            raise
        shutil.rmtree(tmp, ignore_errors=True)


class _EntityNames(Sequence):
    """``'entity_0'``, ``'entity_1'``, ...: the names of :math:`N` entities
    without holding :math:`N` strings."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [f'entity_{j}' for j in range(*i.indices(self.n))]
        i = int(i)
        if not -self.n <= i < self.n:
            raise IndexError(f'entity {i} out of range [0, {self.n})')
        return f'entity_{i % self.n}'

    def __repr__(self) -> str:
        return f'EntityNames({self.n})'


def load_large_mmkg(root: str) -> Tuple[HeteroData, DiskFeatureStore]:
    r"""Loads a graph written by :func:`generate_large_mmkg`.

    Returns ``(data, store)``: the MMKG
    :class:`~torch_geometric.data.HeteroData` (schema of
    :mod:`native_pyg.data.schema`: all three splits, ``num_relations``,
    entity names ``'entity_<i>'`` as a lazy sequence) *without* feature
    stores, and the :class:`~native_pyg.data.feature_store.DiskFeatureStore`
    of ``root/features`` (modalities ``'image'`` and ``'text'``), whose rows
    stay on disk:

    .. code-block:: python

        root = generate_large_mmkg('g300k', 300_000)
        data, store = load_large_mmkg(root)
        inputs = StoredEntityInputs(store, num_relations=data.num_relations)

    Args:
        root (str): The graph directory.
    """
    meta = _read_meta(root)
    if meta is None or meta.get('format') != FORMAT:
        raise ValueError(f"{root}: not a complete large synthetic MMKG (no {META}); "
                         f"generate one with generate_large_mmkg")
    n, r = int(meta['num_entities']), int(meta['num_relations'])
    data = HeteroData()
    data[ENTITY].num_nodes = n
    data[ENTITY].name = _EntityNames(n)
    store = data[REL]
    for split, prefix in (('train', ''), ('valid', 'val_'), ('test', 'test_')):
        triples = np.load(osp.join(root, SPLIT_FILES[split]), mmap_mode='r')
        if triples.shape != (meta['counts'][split], 3):
            raise ValueError(f"{root}: {SPLIT_FILES[split]} holds {triples.shape[0]} triples, "
                             f"{META} says {meta['counts'][split]}")
        edge_index = np.empty((2, len(triples)), np.int64)
        edge_index[0], edge_index[1] = triples[:, 0], triples[:, 2]
        store[f'{prefix}edge_index'] = torch.from_numpy(edge_index)
        store[f'{prefix}edge_type'] = torch.from_numpy(np.array(triples[:, 1]))
        del triples
    data.num_relations = r
    data.relation_names = [f'relation_{i}' for i in range(r)]
    data.name = 'large_synthetic'
    validate_mmkg(data)
    return data, DiskFeatureStore(osp.join(root, FEATURES))


def large_mmkg_entities(root: str, index) -> Dict[str, np.ndarray]:
    r"""Recomputes what the generator drew for the entities ``index`` of
    the graph in ``root`` (from ``meta.json`` alone; features stay
    unread): ``'type'``, ``'position'``, ``'popularity'``, ``'latent'``
    ``[n, k]``, and per modality ``m`` its rows ``m`` ``[n, d]`` (rounded
    to the storage dtype, as ``float32``) and ``f'{m}_mask'``."""
    meta = _read_meta(root)
    if meta is None or meta.get('format') != FORMAT:
        raise ValueError(f"{root}: not a complete large synthetic MMKG (no {META})")
    if meta.get('version') != VERSION:
        raise ValueError(f"{root}: written by generator version {meta.get('version')}, "
                         f"this is version {VERSION}")
    spec = GraphSpec(meta['args'])
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if len(index) and (index.min() < 0 or index.max() >= spec.n):
        raise ValueError(f"entity ids must be in [0, {spec.n})")
    blocks = index // BLOCK
    weights = {m: spec.weights(m) for m in MODALITIES}
    out: Dict[str, list] = {}
    for b in np.unique(blocks):
        at = index[blocks == b] - b * BLOCK
        parts = dict(zip(('type', 'position', 'popularity'), spec.attributes(int(b))))
        parts['latent'] = spec.latents(int(b))
        for m in MODALITIES:
            rows, mask = spec.rows(m, int(b), weights[m])
            parts[m] = rows.astype(DTYPES[spec.dtype]).astype(np.float32)
            parts[f'{m}_mask'] = mask
        for key, value in parts.items():
            out.setdefault(key, []).append((np.flatnonzero(blocks == b), value[at]))
    result = {}
    for key, pieces in out.items():
        first = pieces[0][1]
        arr = np.empty((len(index),) + first.shape[1:], first.dtype)
        for where, value in pieces:
            arr[where] = value
        result[key] = arr
    return result


__all__ = ['generate_large_mmkg', 'load_large_mmkg', 'large_mmkg_entities']

