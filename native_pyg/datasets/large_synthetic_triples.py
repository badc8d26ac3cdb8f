"""The triple stage of :func:`~native_pyg.datasets.large_synthetic.generate_large_mmkg`:
facts drawn by :class:`~native_pyg.datasets.large_synthetic_model.FactSampler`
are kept as int64 keys in on-disk partitions by head range, deduplicated,
trimmed to size at random, split into valid/test (keeping their entities and
relations in train) and written as ``train.npy``, ``valid.npy`` and
``test.npy``."""
from __future__ import annotations

import math
import os
import os.path as osp
from typing import Dict, List

import numpy as np

from native_pyg.datasets.large_synthetic_model import (STREAM_SPLIT, STREAM_TRIM,
                                                       TRIPLE_BLOCK, FactSampler,
                                                       GraphSpec, rng)

SPLIT_FILES = {'train': 'train.npy', 'valid': 'valid.npy', 'test': 'test.npy'}
PART_KEYS = 1 << 23        # triples per on-disk partition while deduplicating


def _decode(keys: np.ndarray, n: int, r: int) -> np.ndarray:
    out = np.empty((len(keys), 3), np.int64)
    out[:, 0], rest = np.divmod(keys, r * n)
    out[:, 1], out[:, 2] = np.divmod(rest, n)
    return out


class _Partitions:
    """Keys of distinct triples, in files by head range (so their
    concatenation is sorted), never all in memory at once."""

    def __init__(self, work: str, n: int, parts: int):
        self.work, self.n, self.parts = work, n, parts
        self.counts = [0] * parts
        for p in range(parts):
            open(self.path(p), 'wb').close()

    def path(self, p: int) -> str:
        return osp.join(self.work, f'part{p:04d}.bin')

    def append(self, keys: np.ndarray, r: int) -> None:
        part = (keys // (r * self.n)) * self.parts // self.n
        order = np.argsort(part, kind='stable')
        bounds = np.searchsorted(part[order], np.arange(self.parts + 1))
        for p in range(self.parts):
            if bounds[p + 1] > bounds[p]:
                with open(self.path(p), 'ab') as f:
                    f.write(keys[order[bounds[p]:bounds[p + 1]]].tobytes())

    def read(self, p: int) -> np.ndarray:
        return np.fromfile(self.path(p), dtype=np.int64)

    def write(self, p: int, keys: np.ndarray) -> None:
        keys.tofile(self.path(p))
        self.counts[p] = len(keys)

    def dedupe(self) -> int:
        for p in range(self.parts):
            self.write(p, np.unique(self.read(p)))
        return sum(self.counts)

    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def take(self, index: np.ndarray) -> np.ndarray:
        """The keys at global positions ``index`` (in that order)."""
        off = self.offsets()
        part = np.searchsorted(off, index, side='right') - 1
        out = np.empty(len(index), np.int64)
        for p in np.unique(part):
            at = part == p
            keys = np.memmap(self.path(p), dtype=np.int64, mode='r')
            out[at] = keys[index[at] - off[p]]
            del keys
        return out


def _write_npy_header(f, rows: int) -> None:
    np.lib.format.write_array_header_1_0(f, {
        'descr': np.lib.format.dtype_to_descr(np.dtype(np.int64)), 'fortran_order': False,
        'shape': (rows, 3)})



def write_triples(spec: GraphSpec, out: str, work: str, progress: bool) -> Dict[str, int]:
    """Draws the facts of ``spec``, writes the three splits as
    :data:`SPLIT_FILES` into ``out`` (partitions under ``work``) and returns
    their sizes."""
    from tqdm.auto import tqdm
    a = spec.args
    train_size = int(round(float(a['triples_per_entity']) * spec.n))
    num_valid, num_test = int(a['valid_triples']), int(a['test_triples'])
    needed = train_size + num_valid + num_test
    disable = None if progress else True
    with tqdm(total=spec.n, desc='entities', unit='ent', unit_scale=True, disable=disable) as bar:
        sampler = FactSampler(spec, bar)
    parts = _Partitions(work, spec.n, max(1, -(-int(needed * 1.3) // PART_KEYS)))

    # rounds of facts until enough distinct ones; the block numbering runs on
    block, drawn, distinct = 0, 0, 0
    with tqdm(total=needed, desc='triples', unit='tri', unit_scale=True, disable=disable) as bar:
        for _ in range(12):
            rate = distinct / drawn if drawn else 1.0
            todo = int(math.ceil((needed - distinct) / max(rate, 0.05) * 1.02)) + 16
            while todo > 0:
                keys = sampler.block(block, min(int(math.ceil(todo / spec.expansion)),
                                                TRIPLE_BLOCK))
                todo -= max(len(keys), 1)  # ends even where every draw is a self-loop
                block += 1
                drawn += len(keys)
                parts.append(keys, spec.r)
                bar.update(min(len(keys), max(0, needed - bar.n)))
            distinct = parts.dedupe()
            if distinct >= needed:
                break
        else:
            raise ValueError(f"only {distinct} distinct triples among {spec.n} entities, "
                             f"{needed} needed; ask for fewer triples per entity")
    del sampler

    # drop the excess at random, then count degrees
    drop = np.sort(rng(spec.seed, STREAM_TRIM).choice(distinct, distinct - needed, replace=False))
    off = parts.offsets()
    degree = np.zeros(spec.n, np.int64)
    rel_count = np.zeros(spec.r, np.int64)
    for p in range(parts.parts):
        keys = parts.read(p)
        cut = drop[(drop >= off[p]) & (drop < off[p + 1])] - off[p]
        if len(cut):
            keys = np.delete(keys, cut)
            parts.write(p, keys)
        tri = _decode(keys, spec.n, spec.r)
        degree += np.bincount(tri[:, 0], minlength=spec.n)
        degree += np.bincount(tri[:, 2], minlength=spec.n)
        rel_count += np.bincount(tri[:, 1], minlength=spec.r)
        del tri, keys

    # valid/test: random distinct facts whose entities and relation stay in train
    held = num_valid + num_test
    g = rng(spec.seed, STREAM_SPLIT)
    cand = g.choice(needed, min(needed, 2 * held + 1024), replace=False)
    cand_keys = parts.take(cand)
    chosen: List[int] = []
    for key, (h, r, t) in zip(cand_keys.tolist(), _decode(cand_keys, spec.n, spec.r).tolist()):
        if len(chosen) == held:
            break
        if degree[h] > 1 and degree[t] > 1 and rel_count[r] > 1:
            degree[h] -= 1
            degree[t] -= 1
            rel_count[r] -= 1
            chosen.append(key)
    if len(chosen) < held:
        raise ValueError(f"only {len(chosen)} valid/test triples keep their entities and relation "
                         f"in train, {held} asked; ask for fewer valid/test triples")
    chosen_keys = np.array(chosen, dtype=np.int64).reshape(-1)
    np.save(osp.join(out, SPLIT_FILES['valid']), _decode(chosen_keys[:num_valid], spec.n, spec.r))
    np.save(osp.join(out, SPLIT_FILES['test']), _decode(chosen_keys[num_valid:], spec.n, spec.r))

    held_sorted = np.sort(chosen_keys)
    with open(osp.join(out, SPLIT_FILES['train']), 'wb') as f:
        _write_npy_header(f, train_size)
        written = 0
        for p in range(parts.parts):
            keys = parts.read(p)
            if len(held_sorted):
                at = np.minimum(np.searchsorted(held_sorted, keys), len(held_sorted) - 1)
                keys = keys[held_sorted[at] != keys]
            f.write(_decode(keys, spec.n, spec.r).tobytes())
            written += len(keys)
            os.remove(parts.path(p))
    assert written == train_size, (written, train_size)
    return {'train': train_size, 'valid': num_valid, 'test': num_test}
