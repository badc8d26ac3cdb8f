r"""Raw entity inputs (images, descriptions, numeric attributes) encoded
into one modality's feature file, in chunks of entities, resumable after a
kill, in bounded memory.

A modality's rows come from a :class:`RowSource`: given the ids of a chunk
of entities, it returns their rows, which of them have the modality, how
many inputs were pooled into each row, and what it had to skip (an
unreadable image, a missing file). :func:`featurize` asks it for one chunk
at a time, commits each chunk to a work folder as it is done, and, once
every chunk is there, writes the modality in the disk feature store's own
format (:mod:`native_pyg.data.feature_store`)::

    OUT/<modality>.npy          [N, d] rows (float16 by default)
    OUT/<modality>.mask.npy     [N] bool: the entity has the modality
    OUT/<modality>.count.npy    [N] int32: inputs pooled into the row
    OUT/<modality>.json         what made the rows: the source's settings, counts

A rerun after a kill keeps the committed chunks and writes the same files as
an uninterrupted run; a rerun with other settings starts over.
"""
from __future__ import annotations

import contextlib
import json
import os
import os.path as osp
import shutil
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, NamedTuple, Optional, Protocol, Tuple

import numpy as np

from native_pyg.data.atomic_files import atomic_file
from native_pyg.data.feature_store import DTYPES


class RowChunk(NamedTuple):
    """The rows of one chunk of entities, in the order asked for.

    Args:
        rows (np.ndarray): ``[k, d]`` float32 rows (zeros where ``mask`` is
            false).
        mask (np.ndarray): ``[k]`` bool: the entity has the modality.
        counts (np.ndarray): ``[k]`` int32: inputs pooled into each row
            (images; 1 or 0 for a description or a set of attributes).
        skipped (dict[str, int]): What was skipped and how often, e.g.
            ``{'unreadable': 2, 'missing': 1}``.
    """
    rows: np.ndarray
    mask: np.ndarray
    counts: np.ndarray
    skipped: Dict[str, int]


class RowSource(Protocol):
    """Where :func:`featurize` gets a modality's rows from."""

    #: the size :math:`d` of a row
    dim: int

    def settings(self) -> Dict[str, Any]:
        """Everything that decides the rows, as JSON values: the model and
        its weights, pooling, normalisation, the identity of the input
        files. A rerun resumes only if these are the same."""
        ...

    def rows(self, entities: np.ndarray) -> RowChunk:
        """The rows of ``entities`` (``[k]`` int64 ids), in that order."""
        ...


#: rows of one committed chunk (the unit of progress a kill can lose)
CHUNK_ROWS = 1024
#: the files :func:`featurize` writes for a modality, beside its JSON record
OUTPUTS = ('.npy', '.mask.npy', '.count.npy')


@dataclass
class FeaturizeReport:
    """What :func:`featurize` wrote.

    Args:
        modality (str): The modality.
        out_dir (str): The folder of its files.
        num_entities (int): Rows :math:`N`.
        encoded (int): Entities asked of the source (all, or ``limit``).
        present (int): Entities with the modality.
        pooled (int): Inputs pooled into the rows.
        skipped (dict[str, int]): What the source skipped, by cause.
        resumed (int): Chunks kept from an interrupted run.
        chunks (int): Chunks in all.
    """
    modality: str
    out_dir: str
    num_entities: int
    encoded: int
    present: int
    pooled: int
    skipped: Dict[str, int]
    resumed: int
    chunks: int

    @property
    def files(self) -> Dict[str, str]:
        """``{'file': rows, 'mask': mask}``: what a manifest's ``features:``
        entry names."""
        return {'file': osp.join(self.out_dir, f'{self.modality}.npy'),
                'mask': osp.join(self.out_dir, f'{self.modality}.mask.npy')}

    def line(self) -> str:
        """The one summary line."""
        skipped = ', '.join(f'{n:,} {why}' for why, n in sorted(self.skipped.items()) if n)
        limit = (f" (--limit: the first {self.encoded:,} of {self.num_entities:,} encoded)"
                 if self.encoded < self.num_entities else '')
        resumed = f"; {self.resumed} of {self.chunks} chunks kept from an interrupted run" \
            if self.resumed else ''
        return (f"{self.modality}: {self.present:,} of {self.num_entities:,} entities have rows"
                f"{limit}, {self.pooled:,} inputs pooled; skipped: {skipped or 'none'}{resumed}")


def featurize(source: RowSource, num_entities: int, out_dir: str, modality: str,
              dtype: str = 'float16', chunk_rows: int = CHUNK_ROWS, limit: Optional[int] = None,
              overwrite: bool = False, progress: bool = True) -> FeaturizeReport:
    r"""Encodes the rows of entities :math:`0, \dots, N-1` from ``source``,
    ``chunk_rows`` entities at a time, into ``out_dir/<modality>.npy``
    (``[N, d]``, ``dtype``), ``.mask.npy``, ``.count.npy`` and ``.json``.

    Each chunk is committed to ``out_dir/.featurize-<modality>/`` as soon as
    it is encoded; a rerun after a kill keeps the committed chunks when the
    source's :meth:`~RowSource.settings` and the arguments are the same
    (else it starts over, with a warning) and writes the same files as an
    uninterrupted run. The files are written whole or not at all, the
    record (``.json``) last, one chunk in memory at a time.

    Args:
        source (RowSource): Where the rows come from.
        num_entities (int): Rows :math:`N` (the dataset's entities).
        out_dir (str): Folder of the files (created).
        modality (str): The modality's name, e.g. ``'image'``.
        dtype (str, optional): ``'float16'`` or ``'float32'``.
            (default: ``'float16'``)
        chunk_rows (int, optional): Entities per committed chunk.
            (default: :data:`CHUNK_ROWS`)
        limit (int, optional): Encode the first ``limit`` entities only (a
            quick try); the others are masked. (default: :obj:`None`: all)
        overwrite (bool, optional): Replace the modality's files where a
            finished run wrote them. (default: :obj:`False`)
        progress (bool, optional): A progress bar with rows per second.
            (default: :obj:`True`)
    """
    if not modality or '.' in modality or '/' in modality or os.sep in modality:
        raise ValueError(f"modality {modality!r}: expected a name such as 'image'")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if num_entities < 1 or chunk_rows < 1 or (limit is not None and limit < 1):
        raise ValueError(f"num_entities, chunk_rows and limit must be positive, got "
                         f"{num_entities}, {chunk_rows}, {limit}")
    os.makedirs(out_dir, exist_ok=True)
    base = osp.join(out_dir, modality)
    work = osp.join(out_dir, f'.featurize-{modality}')
    _check_outputs(base, work, overwrite)
    job = _job(source, num_entities, dtype, chunk_rows, limit)
    job_file = osp.join(work, 'job.json')
    if osp.isfile(job_file):
        with open(job_file) as f:
            previous = json.load(f)
        if previous != job:
            warnings.warn(f"{work}: an interrupted run with other settings; starting over")
            shutil.rmtree(work)
    if not osp.isfile(job_file):
        os.makedirs(work, exist_ok=True)
        with atomic_file(job_file, 'w') as f:
            json.dump(job, f, indent=1)
    encoded = min(num_entities, limit or num_entities)
    starts = list(range(0, encoded, chunk_rows))
    resumed = 0
    from tqdm.auto import tqdm
    with tqdm(total=encoded, desc=modality, unit='row',
              disable=not progress) as bar:
        for i, start in enumerate(starts):
            path = osp.join(work, f'chunk-{i:06d}.npz')
            stop = min(start + chunk_rows, encoded)
            if osp.isfile(path):
                resumed += 1
            else:
                _commit(path, source, np.arange(start, stop, dtype=np.int64), dtype, modality)
            bar.update(stop - start)
    present, pooled, skipped = _assemble(base, work, len(starts), num_entities, source.dim,
                                         dtype)
    record = {**job, 'encoded': encoded, 'present': present, 'pooled': pooled,
              'skipped': skipped}
    with atomic_file(base + '.json', 'w') as f:  # last: the files are complete
        json.dump(record, f, indent=1)
    shutil.rmtree(work)
    return FeaturizeReport(modality, out_dir, num_entities, encoded, present, pooled, skipped,
                           resumed, len(starts))


def is_featurized(source: RowSource, num_entities: int, out_dir: str, modality: str,
                  dtype: str = 'float16', chunk_rows: int = CHUNK_ROWS,
                  limit: Optional[int] = None) -> bool:
    """Whether ``out_dir`` holds the files :func:`featurize` would write with
    these arguments: its record names the same settings and every file is
    there."""
    base = osp.join(out_dir, modality)
    if not all(osp.isfile(base + ext) for ext in OUTPUTS + ('.json', )):
        return False
    try:
        with open(base + '.json') as f:
            record = json.load(f)
    except (OSError, ValueError):
        return False
    job = _job(source, num_entities, dtype, chunk_rows, limit)
    return isinstance(record, dict) and {k: record.get(k) for k in job} == job


def _job(source: RowSource, num_entities: int, dtype: str, chunk_rows: int,
         limit: Optional[int]) -> Dict[str, Any]:
    """What decides a run's files (as it reads back from JSON)."""
    job = {'version': 1, 'num_entities': int(num_entities), 'dim': int(source.dim),
           'dtype': dtype, 'chunk_rows': int(chunk_rows), 'limit': limit,
           'settings': source.settings()}
    return json.loads(json.dumps(job))


def _check_outputs(base: str, work: str, overwrite: bool) -> None:
    """A finished run's files are replaced only with ``overwrite``; files
    without their record are an interrupted assembly's when the work folder
    is there (rewritten), else someone else's (refused)."""
    if osp.exists(base + '.json') and not overwrite:
        raise ValueError(f"{base}.json: the {osp.basename(base)} features are written already; "
                         f"nothing is overwritten (--overwrite replaces them)")
    others = [base + ext for ext in OUTPUTS if osp.exists(base + ext)]
    if others and not overwrite and not osp.isdir(work):
        raise ValueError(f"{others[0]}: exists and was not written by featurize; nothing is "
                         f"overwritten (--overwrite replaces it)")


def _commit(path: str, source: RowSource, ids: np.ndarray, dtype: str, modality: str) -> None:
    """Encodes one chunk and commits it (written whole or not at all)."""
    chunk = source.rows(ids)
    k, dim = len(ids), source.dim
    rows = np.asarray(chunk.rows, dtype=np.float32)
    mask = np.asarray(chunk.mask, dtype=bool).reshape(-1)
    counts = np.asarray(chunk.counts, dtype=np.int32).reshape(-1)
    if rows.shape != (k, dim) or mask.shape != (k,) or counts.shape != (k,):
        raise ValueError(f"{modality}: the source gave rows {list(rows.shape)}, mask "
                         f"{list(mask.shape)}, counts {list(counts.shape)} for {k} entities "
                         f"of dim {dim}")
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        raise ValueError(f"{modality}: the row of entity {int(ids[np.argmin(finite)])} is not "
                         f"finite")
    rows[~mask] = 0
    with atomic_file(path, 'wb') as f:
        np.savez(f, rows=rows.astype(DTYPES[dtype]), mask=mask, counts=counts,
                 skipped=np.array(json.dumps(chunk.skipped)))


def _assemble(base: str, work: str, chunks: int, num_entities: int, dim: int,
              dtype: str) -> Tuple[int, int, Dict[str, int]]:
    """Streams the committed chunks into the modality's three files (the
    entities past ``limit`` as masked zero rows); returns the present
    entities, the inputs pooled and the skipped inputs by cause."""
    present, pooled, skipped = 0, 0, Counter()
    kinds = {'.npy': (np.dtype(DTYPES[dtype]), (num_entities, dim)),
             '.mask.npy': (np.dtype(np.bool_), (num_entities,)),
             '.count.npy': (np.dtype(np.int32), (num_entities,))}
    with contextlib.ExitStack() as stack:
        files = {ext: stack.enter_context(atomic_file(base + ext, 'wb')) for ext in OUTPUTS}
        for ext, (kind, shape) in kinds.items():
            np.lib.format.write_array_header_1_0(files[ext], {
                'descr': np.lib.format.dtype_to_descr(kind), 'fortran_order': False,
                'shape': shape})
        written = 0
        for i in range(chunks):
            with np.load(osp.join(work, f'chunk-{i:06d}.npz')) as z:
                parts = {'.npy': z['rows'], '.mask.npy': z['mask'], '.count.npy': z['counts']}
                skipped.update(json.loads(str(z['skipped'])))
            present += int(parts['.mask.npy'].sum())
            pooled += int(parts['.count.npy'].sum())
            for ext, part in parts.items():
                files[ext].write(np.ascontiguousarray(part).tobytes())
            written += len(parts['.mask.npy'])
        while written < num_entities:  # past the limit: masked zero rows, a chunk at a time
            k = min(CHUNK_ROWS, num_entities - written)
            for ext, (kind, shape) in kinds.items():
                files[ext].write(np.zeros((k,) + shape[1:], dtype=kind).tobytes())
            written += k
    return present, pooled, dict(skipped)
