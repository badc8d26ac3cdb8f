r"""Checkpoints of a run whose entity table is sharded over its processes
(``model.table: sharded``): each process writes its own rows, and their
row-wise Adagrad state, to a file of its own; rank 0 then writes the
checkpoint with a manifest of those files.

A checkpoint ``last.pt`` keeps its shards in ``last.shards/<tag>/``, one
``rank<r>-of-<P>.pt`` per process, where the tag (the epoch and a time)
is new for every write. Every process writes its shard atomically; rank 0
writes ``last.pt`` once all of them are written, naming the tag, and only
then removes the shards of earlier tags. A kill at any moment leaves a
``last.pt`` whose shards are all there.

Reading (:func:`with_table_shards`): a process reads its own shard where
the number of processes is the one that wrote it, and else takes its rows
from the shards that overlap them (re-sharded, rows and Adagrad state
exact). :func:`consolidate` joins the shards into an ordinary checkpoint
(``native-pyg export``) for ``evaluate`` and ``predict`` on one machine
where the table fits; an exported ``last.pt`` also resumes on any number
of processes.
"""
from __future__ import annotations

import os
import os.path as osp
import shutil
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from native_pyg.nn.sharded_table import ENTRY_NAMES
from native_pyg.training import distributed
from native_pyg.training.checkpoint import load_checkpoint, save_checkpoint

#: the parts of a checkpoint that hold a model's state dict
PLACES = ('model', 'best_state')


def table_prefixes(weights: Dict[str, Any]) -> List[str]:
    """The prefixes (e.g. ``'entity_emb.'``) of the sharded tables whose
    entries (:meth:`~native_pyg.nn.sharded_table.ShardedTable.state_entries`)
    a model state dict holds."""
    return [k[:-len('row_range')] for k in weights if k.endswith('.row_range')]


def _ranges(weights: Dict[str, Any]) -> Dict[str, List[int]]:
    """``{prefix: [start, stop]}`` of the sharded tables in ``weights``."""
    return {p: [int(v) for v in weights[p + 'row_range'].tolist()[:2]]
            for p in table_prefixes(weights)}


def shards_folder(path: str) -> str:
    """Where the shards of checkpoint ``path`` lie: ``last.pt`` ->
    ``last.shards``."""
    stem = path[:-3] if path.endswith('.pt') else path
    return stem + '.shards'


def write_checkpoint(state: Dict[str, Any], path: str, info: distributed.DistributedInfo,
                     writes: bool) -> None:
    """Writes ``state`` to ``path`` (by rank 0, ``writes``), each process's
    rows of a sharded table to its own shard first (every process calls
    this); a checkpoint without a sharded table is written as it is."""
    places = [p for p in PLACES if isinstance(state.get(p), dict) and table_prefixes(state[p])]
    if not places:
        if writes:
            save_checkpoint(state, path)
        return
    state, shard = dict(state), {}
    for place in places:
        weights = dict(state[place])
        shard[place] = {prefix + name: weights.pop(prefix + name)
                        for prefix in table_prefixes(weights) for name in ENTRY_NAMES}
        state[place] = weights
    tag = [f"epoch{int(state.get('epoch', 0)):06d}-{time.time_ns()}"]
    if info.enabled:  # one tag for every process: rank 0's
        import torch.distributed as dist
        dist.broadcast_object_list(tag, src=0)
    folder = shards_folder(path)
    name = f'{tag[0]}/rank{info.rank:05d}-of-{info.world_size:05d}.pt'
    os.makedirs(osp.join(folder, tag[0]), exist_ok=True)
    save_checkpoint({'rank': info.rank, 'world_size': info.world_size, 'entries': shard},
                    osp.join(folder, name))
    ranges = _ranges(shard[places[0]])
    written = distributed.gather_objects((name, ranges), info)  # once every shard is written
    if not writes:
        return
    state['table_shards'] = {'folder': osp.basename(folder), 'tag': tag[0],
                             'world_size': info.world_size,
                             'files': [n for n, _ in written], 'ranges': [r for _, r in written]}
    save_checkpoint(state, path)
    for old in os.listdir(folder):  # after the checkpoint that no longer names them
        if old != tag[0]:
            shutil.rmtree(osp.join(folder, old), ignore_errors=True)


def _manifest(state: Dict[str, Any], path: str) -> Optional[Dict[str, Any]]:
    manifest = state.get('table_shards')
    if manifest is None:
        return None
    if not isinstance(manifest, dict) or not {'folder', 'files', 'ranges',
                                              'world_size'} <= set(manifest):
        raise ValueError(f"{path}: its table_shards manifest is damaged")
    return manifest


def _read_shard(path: str, manifest: Dict[str, Any], index: int) -> Dict[str, Any]:
    """Shard ``index`` of the manifest, checked against it (one line naming
    the file when it is missing or another process's)."""
    name = manifest['files'][index]
    file = osp.join(osp.dirname(osp.abspath(path)), manifest['folder'], name)
    if not osp.exists(file):
        raise ValueError(f"{path}: the table shard {file} is missing (the checkpoint names "
                         f"{manifest['world_size']} shards)")
    try:
        shard = load_checkpoint(file, mmap=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: the table shard {file} cannot be read ({e})") from None
    entries = shard.get('entries') if isinstance(shard, dict) else None
    if (not isinstance(entries, dict) or shard.get('rank') != index
            or shard.get('world_size') != manifest['world_size']):
        raise ValueError(f"{path}: the table shard {file} is not shard {index} of "
                         f"{manifest['world_size']} this checkpoint names")
    for place in entries.values():
        ranges = _ranges(place)
        if ranges != manifest['ranges'][index]:
            raise ValueError(f"{path}: the table shard {file} holds rows {ranges}, the "
                             f"checkpoint names {manifest['ranges'][index]}")
    return entries


def _rows_of(path: str, manifest: Dict[str, Any], read: Callable[[int], Dict[str, Any]],
             place: str, prefix: str, start: int, stop: int) -> Dict[str, torch.Tensor]:
    """The entries of rows ``start:stop`` of table ``prefix``, from the
    shards that hold them (another number of processes wrote them), each
    read by ``read(index)``."""
    parts: List[Tuple[int, int, Dict[str, Any]]] = []
    size: List[int] = []
    for index in range(manifest['world_size']):
        lo, hi = manifest['ranges'][index].get(prefix, (0, 0))[:2]
        if hi <= start or lo >= stop:
            continue
        entries = read(index)[place]
        size = entries[prefix + 'row_range'].tolist()[2:]
        parts.append((lo, hi, entries))
    if not parts:
        raise ValueError(f"{path}: its table shards do not hold rows {start}:{stop}")
    rows = torch.cat([e[prefix + 'rows'][max(start, lo) - lo:min(stop, hi) - lo]
                      for lo, hi, e in parts])
    accumulator = torch.cat([e[prefix + 'accumulator'][max(start, lo) - lo:min(stop, hi) - lo]
                             for lo, hi, e in parts])
    if rows.size(0) != stop - start:
        raise ValueError(f"{path}: its table shards do not hold rows {start}:{stop}")
    return {prefix + 'rows': rows, prefix + 'accumulator': accumulator,
            prefix + 'row_range': torch.tensor([start, stop, *size])}


def with_table_shards(state: Dict[str, Any], path: str, model: torch.nn.Module,
                      info: Optional[distributed.DistributedInfo] = None) -> Dict[str, Any]:
    """``state`` (read from ``path``) with this process's rows of the
    model's sharded tables: from the shards its manifest names (re-sharded
    where another number of processes wrote them), or from the whole tables
    of a consolidated checkpoint; ``state`` itself for a model without a
    sharded table.

    Raises:
        ValueError: one line naming the file: a missing or mismatched
            shard, or a sharded checkpoint read by a model whose table is
            not sharded (consolidate it first with ``native-pyg export``).
    """
    manifest = _manifest(state, path)
    tables = {name + '.': m for name, m in model.named_modules() if getattr(m, 'sharded', False)}
    if manifest is None:
        return _rows_of_whole(state, tables) if tables else state
    info = info or distributed.current()
    if not tables:
        raise ValueError(f"{path}: its entity table is sharded over {manifest['world_size']} "
                         f"processes; consolidate it first: native-pyg export --checkpoint "
                         f"{path} --out model.pt (or continue it under torchrun)")
    state = dict(state)
    shards: Dict[int, Dict[str, Any]] = {}

    def read(index: int) -> Dict[str, Any]:  # each shard once, for the model and the best
        if index not in shards:
            shards[index] = _read_shard(path, manifest, index)
        return shards[index]

    same = manifest['world_size'] == info.world_size
    own = read(info.rank) if same else None
    for place in PLACES:
        if not isinstance(state.get(place), dict):
            continue
        weights = dict(state[place])
        for prefix, table in tables.items():
            start, stop = table.row_range
            if own is not None and place in own and \
                    _ranges(own[place]).get(prefix) == [start, stop]:
                weights.update({prefix + n: own[place][prefix + n] for n in ENTRY_NAMES})
            else:
                weights.update(_rows_of(path, manifest, read, place, prefix, start, stop))
        state[place] = weights
    return state


def _rows_of_whole(state: Dict[str, Any], tables: Dict[str, Any]) -> Dict[str, Any]:
    """A consolidated checkpoint (:func:`consolidate`) read for sharded
    tables: each process keeps its own rows of each whole ``weight``, with
    their accumulators (re-sharded on any number of processes)."""
    kept = state.get('table_accumulators') or {}
    state = dict(state)
    for place in PLACES:
        weights = state.get(place)
        if not isinstance(weights, dict):
            continue
        weights = dict(weights)
        for prefix, table in tables.items():
            whole = weights.pop(prefix + 'weight', None)
            if whole is None:
                continue
            sums = kept.get(place, {}).get(prefix)
            weights.update({prefix + k: v for k, v in table.entries_of_whole(whole, sums).items()})
        state[place] = weights
    return state


def consolidate(path: str) -> Dict[str, Any]:
    """The ordinary checkpoint of the sharded one at ``path``, with every key
    it holds: each table's rows joined from its shards into ``weight``
    (``[N, D]``, the dense table's entry; read one shard at a time), in the
    model and in the best weights a ``last.pt`` keeps, and their Adagrad
    accumulators in ``table_accumulators``. ``evaluate`` and ``predict``
    read it as a dense table (``exported_from``); a ``last.pt`` exported
    this way resumes under ``torchrun`` on any number of processes
    (:func:`with_table_shards`). The whole table is held in memory once."""
    state = load_checkpoint(path, mmap=True)
    manifest = _manifest(state, path) if isinstance(state, dict) else None
    if manifest is None:
        raise ValueError(f"{path}: not a checkpoint of a sharded table (no table_shards "
                         f"manifest); it is already an ordinary one")
    out = {k: v for k, v in state.items() if k != 'table_shards'}
    shards = [_read_shard(path, manifest, index) for index in range(manifest['world_size'])]
    accumulators: Dict[str, Dict[str, torch.Tensor]] = {}
    shapes: Dict[str, List[int]] = {}
    for place in [p for p in PLACES if isinstance(state.get(p), dict)]:
        weights, tables, sums = dict(state[place]), {}, {}
        for shard in shards:
            entries = shard.get(place, {})
            for prefix in table_prefixes(entries):
                start, stop, rows, dim = entries[prefix + 'row_range'].tolist()
                if prefix not in tables:
                    tables[prefix] = torch.empty(rows, dim, dtype=entries[prefix + 'rows'].dtype)
                    sums[prefix] = torch.empty(rows, dtype=entries[prefix + 'accumulator'].dtype)
                tables[prefix][start:stop] = entries[prefix + 'rows']
                sums[prefix][start:stop] = entries[prefix + 'accumulator']
        weights.update({prefix + 'weight': table for prefix, table in tables.items()})
        out[place], accumulators[place] = weights, sums
        shapes.update({p: list(t.shape) for p, t in tables.items()})
    out['table_accumulators'] = accumulators
    out['exported_from'] = {'checkpoint': osp.abspath(path),
                            'world_size': manifest['world_size'], 'tables': shapes}
    return out


def load_weights(model: torch.nn.Module, path: str) -> Dict[str, Any]:
    """Loads the weights of checkpoint ``path`` into ``model``, those of a
    sharded table from its shards; returns the checkpoint."""
    from native_pyg.training.checkpoint import load_weights_into
    state = load_checkpoint(path, mmap=True)
    if _manifest(state, path) is None:
        return load_weights_into(model, path)
    state = with_table_shards(state, path, model)
    model.load_state_dict(state['model'])
    return state
