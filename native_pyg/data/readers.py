"""Readers for OpenKE-format triples and modality feature files.

Every malformed input raises :class:`MMKGFormatError`, whose message starts
with ``file:line:`` so that the offending row can be found at once.
"""
from __future__ import annotations

import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

#: feature file suffix (as released) -> modality name used in the HeteroData
FEATURE_FILES = {
    'visual': 'image',
    'textual': 'text',
    'numeric': 'numeric',
    'audio': 'audio',
    'video': 'video',
}
SPLIT_FILES = {'train': 'train2id.txt', 'valid': 'valid2id.txt', 'test': 'test2id.txt'}


class MMKGFormatError(ValueError):
    """A malformed dataset file; the message names the file and line."""


def _lines(path: str) -> List[Tuple[int, List[str]]]:
    if not osp.exists(path):
        raise MMKGFormatError(f"{path}: file not found")
    with open(path, encoding='utf-8-sig') as f:  # a BOM is not part of a name
        rows = [(i + 1, line.split()) for i, line in enumerate(f)]
    rows = [(n, fields) for n, fields in rows if fields]  # blank lines carry nothing
    if not rows:
        raise MMKGFormatError(f"{path}: file is empty (expected a count on line 1)")
    return rows


def _count(path: str, rows) -> int:
    n, fields = rows[0]
    if len(fields) != 1 or not fields[0].lstrip('-').isdigit():
        raise MMKGFormatError(f"{path}:{n}: expected the row count alone on the first line, "
                              f"got {' '.join(fields)!r}")
    count = int(fields[0])
    if count != len(rows) - 1:
        raise MMKGFormatError(f"{path}:{n}: header says {count} rows but the file has "
                              f"{len(rows) - 1}")
    return count


def read_id_map(path: str) -> List[str]:
    """Reads ``entity2id.txt`` / ``relation2id.txt`` (``name<TAB or space>id``
    per line) and returns the names ordered by id. Names may contain spaces
    when the file is tab separated; the id is always the last field."""
    rows = _lines(path)
    count = _count(path, rows)
    names: List[Optional[str]] = [None] * count
    with open(path, encoding='utf-8-sig') as f:  # a BOM is not part of a name
        raw = [line.rstrip('\r\n') for line in f]
    for n, fields in rows[1:]:
        line = raw[n - 1]
        if len(fields) < 2:
            raise MMKGFormatError(f"{path}:{n}: expected 'name<TAB>id', got {line!r}")
        if '\t' in line.strip():
            name, _, id_str = line.strip().rpartition('\t')
        else:
            name, id_str = ' '.join(fields[:-1]), fields[-1]
        id_str = id_str.strip()
        if not id_str.lstrip('-').isdigit():
            raise MMKGFormatError(f"{path}:{n}: id {id_str!r} is not an integer")
        i = int(id_str)
        if not 0 <= i < count:
            raise MMKGFormatError(f"{path}:{n}: id {i} is outside [0, {count})")
        if names[i] is not None:
            raise MMKGFormatError(f"{path}:{n}: id {i} is used twice "
                                  f"({names[i]!r} and {name.strip()!r})")
        names[i] = name.strip()
    return names  # every id seen once and count rows -> no gaps


def read_triples(path: str, num_entities: int, num_relations: int) -> Tensor:
    """Reads an OpenKE split file (``head tail relation`` per line, note the
    order) and returns ``[E, 3]`` ``(head, relation, tail)`` rows."""
    rows = _lines(path)
    _count(path, rows)
    if len(rows) == 1:
        raise MMKGFormatError(f"{path}: split is empty (no triples after the header)")
    vals = []
    for n, fields in rows[1:]:
        if len(fields) != 3:
            raise MMKGFormatError(f"{path}:{n}: expected 3 fields 'head tail relation', "
                                  f"got {len(fields)}")
        try:
            vals.append((int(fields[0]), int(fields[1]), int(fields[2])))
        except ValueError:
            raise MMKGFormatError(f"{path}:{n}: non-integer field in {' '.join(fields)!r}") from None
    htr = torch.tensor(vals, dtype=torch.long)
    # Range checks vectorised; only a failing file pays for locating the line.
    bad_e = (htr[:, :2] < 0) | (htr[:, :2] >= num_entities)
    bad_r = (htr[:, 2] < 0) | (htr[:, 2] >= num_relations)
    if bool(bad_e.any()) or bool(bad_r.any()):
        k = int((bad_e.any(1) | bad_r).nonzero()[0])
        n = rows[1 + k][0]
        h, t, r = htr[k].tolist()
        if bool(bad_e[k].any()):
            bad = h if bool(bad_e[k, 0]) else t
            raise MMKGFormatError(f"{path}:{n}: entity id {bad} is outside [0, {num_entities})")
        raise MMKGFormatError(f"{path}:{n}: relation id {r} is outside [0, {num_relations})")
    return htr[:, [0, 2, 1]].contiguous()


def read_openke(raw_dir: str) -> Dict[str, object]:
    """Reads an OpenKE dataset directory: ``entity_names``, ``relation_names``
    and ``train``/``valid``/``test`` ``[E, 3]`` (h, r, t) tensors."""
    ents = read_id_map(osp.join(raw_dir, 'entity2id.txt'))
    rels = read_id_map(osp.join(raw_dir, 'relation2id.txt'))
    out: Dict[str, object] = {'entity_names': ents, 'relation_names': rels}
    for split, fname in SPLIT_FILES.items():
        out[split] = read_triples(osp.join(raw_dir, fname), len(ents), len(rels))
    return out


def read_feature_file(path: str, num_entities: int, nan_rows: str = 'error',
                      zero_rows_missing: bool = True) -> Tuple[Tensor, Tensor]:
    r"""Reads a modality feature file (a float tensor ``[num_entities, d]``
    saved with :func:`torch.save`) safely (``weights_only=True``: a file from
    the internet cannot run code).

    Args:
        path (str): The ``.pth`` file.
        num_entities (int): Expected row count.
        nan_rows (str): ``'error'`` (default) rejects NaN/Inf values;
            ``'missing'`` treats rows holding any NaN/Inf as missing.
        zero_rows_missing (bool): Treat all-zero rows as missing (the
            released MKG-W/MKG-Y files fill missing entities with zeros).

    Returns:
        ``(x, mask)``: features with missing rows zeroed, and the presence mask.
    """
    try:
        x = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise MMKGFormatError(f"{path}: file not found") from None
    except Exception as e:  # pickle errors, unsafe globals, truncated files
        raise MMKGFormatError(f"{path}: cannot be read as a tensor file with "
                              f"weights_only=True ({type(e).__name__}: {e})") from None
    if not isinstance(x, Tensor):
        raise MMKGFormatError(f"{path}: expected a tensor [num_entities, d], "
                              f"got {type(x).__name__}")
    if x.dim() != 2:
        raise MMKGFormatError(f"{path}: expected a 2-D tensor [num_entities, d], "
                              f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise MMKGFormatError(f"{path}: expected floating-point features, got {x.dtype}")
    if x.size(0) != num_entities:
        raise MMKGFormatError(f"{path}: has {x.size(0)} rows but the dataset has "
                              f"{num_entities} entities")
    x = x.float()
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()
        if nan_rows != 'missing':
            raise MMKGFormatError(f"{path}: {bad.numel()} rows hold NaN/Inf values (first: row "
                                  f"{int(bad[0])}); pass nan_rows='missing' (CLI: --nan-rows "
                                  f"missing) to treat them as missing")
    mask = finite.clone()
    if zero_rows_missing:
        mask &= (x != 0).any(dim=1)
    x = torch.where(mask.unsqueeze(1), x, torch.zeros((), dtype=x.dtype))
    _warn_implausible(path, x, mask)
    return x, mask


#: feature values beyond this magnitude are almost surely a unit or export error
ABSURD_MAGNITUDE = 1e6


def _warn_implausible(path: str, x: Tensor, mask: Tensor) -> None:
    """Warns (once per read; datasets cache what they read) about a feature
    file no entity has, or whose values would swamp every projection."""
    import warnings
    if not bool(mask.any()):
        warnings.warn(f"{path}: no entity has this modality (every row is missing); it "
                      f"contributes nothing", stacklevel=3)
        return
    peak = float(x.abs().max())
    if peak > ABSURD_MAGNITUDE:
        rows = int((x.abs() > ABSURD_MAGNITUDE).any(dim=1).sum())
        warnings.warn(f"{path}: {rows} rows hold values beyond {ABSURD_MAGNITUDE:.0e} (largest "
                      f"|x| = {peak:.3g}); training on them is likely to diverge. Normalise the "
                      f"features or check how they were exported", stacklevel=3)


def find_feature_files(raw_dir: str, prefix: str) -> Dict[str, str]:
    """``{modality: path}`` of the ``{prefix}-{visual,textual,...}.pth`` files
    present in ``raw_dir``."""
    out = {}
    for suffix, modality in FEATURE_FILES.items():
        path = osp.join(raw_dir, f'{prefix}-{suffix}.pth')
        if osp.exists(path):
            out[modality] = path
    return out
