"""Readers for OpenKE-format triples, TSV triples of names, name lists and
modality feature files and masks (``.npy`` / ``.pt``).

Every malformed input raises :class:`MMKGFormatError`, whose message starts
with ``file:line:`` so that the offending row can be found at once.
"""
from __future__ import annotations

import os.path as osp
import re
from array import array
import unicodedata
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from native_pyg.data.safe_load import first_line, load_pt

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


def read_text(path: str) -> str:
    """The text of a UTF-8 file (a leading byte-order mark dropped). A byte
    that is not UTF-8 is a :class:`MMKGFormatError` naming the file, line,
    column and byte (``path:3: not UTF-8 text (byte 0xe9 at column 5)``)."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        raise MMKGFormatError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise MMKGFormatError(f"{path}: is a directory, expected a file") from None
    try:
        return raw.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        bom = 3 if raw.startswith(b'\xef\xbb\xbf') else 0
        at = e.start + bom
        line = raw.count(b'\n', 0, at) + 1
        start = raw.rfind(b'\n', 0, at) + 1
        column = len(raw[max(start, bom):at].decode('utf-8', errors='replace')) + 1
        raise MMKGFormatError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[at]:02x} at column {column}); save "
            f"the file as UTF-8 (a byte like this one often comes from Latin-1 or "
            f"Windows-1252)") from None


def text_lines(path: str) -> Iterator[Tuple[int, str]]:
    """``(line number, line)`` of every line of a UTF-8 file, line ends
    (``\\n`` or ``\\r\\n``) cut, read a line at a time (a file of
    millions of triples is never held whole); a leading byte-order mark is
    dropped, and a byte that is not UTF-8 is the error of :func:`read_text`."""
    try:
        f = open(path, 'rb')
    except FileNotFoundError:
        raise MMKGFormatError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise MMKGFormatError(f"{path}: is a directory, expected a file") from None
    with f:
        for number, raw in enumerate(f, 1):
            if number == 1 and raw.startswith(b'\xef\xbb\xbf'):
                raw = raw[3:]
            try:
                line = raw.decode('utf-8')
            except UnicodeDecodeError as e:
                column = len(raw[:e.start].decode('utf-8', errors='replace')) + 1
                raise MMKGFormatError(
                    f"{path}:{number}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                    f"{column}); save the file as UTF-8 (a byte like this one often comes "
                    f"from Latin-1 or Windows-1252)") from None
            if line.endswith('\n'):
                line = line[:-1]
            yield number, line[:-1] if line.endswith('\r') else line


def _fields(path: str) -> Iterator[Tuple[int, List[str]]]:
    """``(line number, fields)`` of the non-blank lines of a file."""
    for n, line in text_lines(path):
        fields = line.split()
        if fields:  # blank lines carry nothing
            yield n, fields


#: an integer as OpenKE files write it: ASCII digits ('²' is a digit to str.isdigit)
_INTEGER = re.compile(r'-?[0-9]+')
#: the longest name an error message repeats
SHOWN_CHARS = 80


def shown(name: str) -> str:
    """``repr(name)``, shortened past :data:`SHOWN_CHARS` characters."""
    return repr(name if len(name) <= SHOWN_CHARS else name[:SHOWN_CHARS] + '...')


def _normal_form_hint(name: str, table: Dict[str, int]) -> str:
    """A hint when ``name`` differs from a known one only in its Unicode
    normal form (e.g. NFD 'Zu\u0308rich' against NFC 'Z\u00fcrich')."""
    wanted = unicodedata.normalize('NFC', name)
    for known in table:
        if unicodedata.normalize('NFC', known) == wanted:
            return (f"; {shown(known)} is the same text in another Unicode normal form "
                    f"(save both files as NFC, e.g. with unicodedata.normalize)")
    return ''


def _count(path: str, rows) -> int:
    return _check_count(path, rows[0], len(rows) - 1)


def _header_count(path: str, header: Tuple[int, List[str]]) -> int:
    """The row count an OpenKE file's first line gives."""
    n, fields = header
    if len(fields) != 1 or not _INTEGER.fullmatch(fields[0]):
        raise MMKGFormatError(f"{path}:{n}: expected the row count alone on the first line, "
                              f"got {' '.join(fields)!r}")
    return int(fields[0])


def _check_count(path: str, header: Tuple[int, List[str]], found: int) -> int:
    """The row count of an OpenKE file's first line, which must be ``found``."""
    n, count = header[0], _header_count(path, header)
    if count != found:
        raise MMKGFormatError(f"{path}:{n}: header says {count} rows but the file has "
                              f"{found}")
    return count


def read_id_map(path: str) -> List[str]:
    """Reads ``entity2id.txt`` / ``relation2id.txt`` (``name<TAB or space>id``
    per line) and returns the names ordered by id. Names may contain spaces
    when the file is tab separated; the id is always the last field."""
    raw = [line for _, line in text_lines(path)]  # names: one string each, kept
    rows = [(n, line.split()) for n, line in enumerate(raw, 1)]
    rows = [(n, fields) for n, fields in rows if fields]
    if not rows:
        raise MMKGFormatError(f"{path}: file is empty (expected a count on line 1)")
    count = _count(path, rows)
    names: List[Optional[str]] = [None] * count
    for n, fields in rows[1:]:
        line = raw[n - 1]
        if len(fields) < 2:
            raise MMKGFormatError(f"{path}:{n}: expected 'name<TAB>id', got {line!r}")
        if '\t' in line.strip():
            name, _, id_str = line.strip().rpartition('\t')
        else:
            name, id_str = ' '.join(fields[:-1]), fields[-1]
        id_str = id_str.strip()
        if not _INTEGER.fullmatch(id_str):
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
    rows = _fields(path)
    header = next(rows, None)
    if header is None:
        raise MMKGFormatError(f"{path}: file is empty (expected a count on line 1)")
    _header_count(path, header)  # a malformed count first, as before any row
    vals, lines = array('q'), array('q')  # 8 bytes a number: no Python object per triple
    for n, fields in rows:
        if len(fields) != 3:
            raise MMKGFormatError(f"{path}:{n}: expected 3 fields 'head tail relation', "
                                  f"got {len(fields)}")
        try:
            vals.extend((int(fields[0]), int(fields[1]), int(fields[2])))
        except ValueError:
            raise MMKGFormatError(f"{path}:{n}: non-integer field in {' '.join(fields)!r}") from None
        lines.append(n)
    _check_count(path, header, len(lines))
    if not lines:
        raise MMKGFormatError(f"{path}: split is empty (no triples after the header)")
    htr = torch.frombuffer(vals, dtype=torch.long).view(-1, 3).clone()
    # Range checks vectorised; only a failing file pays for locating the line.
    bad_e = (htr[:, :2] < 0) | (htr[:, :2] >= num_entities)
    bad_r = (htr[:, 2] < 0) | (htr[:, 2] >= num_relations)
    if bool(bad_e.any()) or bool(bad_r.any()):
        k = int((bad_e.any(1) | bad_r).nonzero()[0])
        n = lines[k]
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


def load_array(path: str) -> Tensor:
    """A tensor from a ``.npy`` file (read with ``allow_pickle=False``) or a
    ``.pt`` / ``.pth`` file (read with ``weights_only=True``): a file from
    the internet cannot run code either way."""
    if path.endswith('.npy'):
        import numpy as np
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise MMKGFormatError(f"{path}: file not found") from None
        except Exception as e:  # object arrays, truncated files, not a .npy file
            why = ("not a .npy array, or it holds Python objects, which are never loaded"
                   if 'allow_pickle' in str(e) else f"{type(e).__name__}: {first_line(e)}")
            raise MMKGFormatError(f"{path}: cannot be read as a .npy array with "
                                  f"allow_pickle=False ({why})") from None
        if arr.dtype.kind not in 'biuf':
            raise MMKGFormatError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
        return torch.from_numpy(np.ascontiguousarray(arr))
    try:
        x = load_pt(path, 'a tensor file')
    except ValueError as e:
        raise MMKGFormatError(str(e)) from None
    if not isinstance(x, Tensor):
        raise MMKGFormatError(f"{path}: expected a tensor [num_entities, d], "
                              f"got {type(x).__name__}")
    if x.layout != torch.strided:
        raise MMKGFormatError(f"{path}: expected a dense tensor, got a {x.layout} one (save "
                              f"x.to_dense())")
    return x


def read_name_list(path: str) -> List[str]:
    """Reads a list of names, one per line (``entities.txt`` /
    ``relations.txt`` of a TSV dataset); line ``k`` names id ``k - 1`` once
    blank lines are left out. Surrounding spaces are not part of a name."""
    names: List[str] = []
    first: Dict[str, int] = {}
    for n, line in text_lines(path):
        name = line.strip()
        if not name:
            continue
        if '\t' in name:
            raise MMKGFormatError(f"{path}:{n}: expected one name per line, got a tab in "
                                  f"{line!r} (an OpenKE 'name<TAB>id' file is entity2id.txt / "
                                  f"relation2id.txt, with its count on line 1)")
        if name in first:
            raise MMKGFormatError(f"{path}:{n}: {name!r} is listed twice (first on line "
                                  f"{first[name]})")
        first[name] = n
        names.append(name)
    if not names:
        raise MMKGFormatError(f"{path}: file is empty (expected one name per line)")
    return names


def read_tsv_triples(path: str, entities: Dict[str, int], relations: Dict[str, int],
                     entities_from: Optional[str] = None,
                     relations_from: Optional[str] = None) -> Tensor:
    r"""Reads a split of triples of names, ``head<TAB>relation<TAB>tail`` per
    line (blank lines left out), and returns ``[E, 3]`` ``(head, relation,
    tail)`` id rows.

    Args:
        path (str): The split file (``train.tsv``, ...).
        entities (dict[str, int]): Name to id; a name not in it gets the
            next id (first-seen order), unless ``entities_from`` is given.
        relations (dict[str, int]): The same for relations.
        entities_from (str, optional): The file that listed every entity: a
            name not in ``entities`` is then an error naming it.
        relations_from (str, optional): The same for relations.
    """
    rows = array('q')  # 8 bytes a number: no Python object per triple
    for n, line in text_lines(path):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split('\t')]
        if len(fields) != 3:
            hint = ''
            if len(fields) == 1 and len(line.split()) == 3:
                hint = '; the fields must be separated by tabs, this line has none'
            raise MMKGFormatError(f"{path}:{n}: expected 3 tab-separated fields "
                                  f"'head<TAB>relation<TAB>tail', got {len(fields)}{hint}")
        for what, name in zip(('head', 'relation', 'tail'), fields):
            if not name:
                raise MMKGFormatError(f"{path}:{n}: the {what} field is empty")
        ids = []
        for k, (name, table, source) in enumerate(
                ((fields[0], entities, entities_from), (fields[1], relations, relations_from),
                 (fields[2], entities, entities_from))):
            i = table.get(name)
            if i is None:
                if source is not None:
                    what = 'relation' if k == 1 else 'entity'
                    raise MMKGFormatError(f"{path}:{n}: unknown {what} {shown(name)} (not in "
                                          f"{source}){_normal_form_hint(name, table)}")
                i = table[name] = len(table)
            ids.append(i)
        rows.extend(ids)
    if not rows:
        raise MMKGFormatError(f"{path}: split is empty (no triples)")
    return torch.frombuffer(rows, dtype=torch.long).view(-1, 3).clone()


def read_feature_file(path: str, num_entities: int, nan_rows: str = 'error',
                      zero_rows_missing: bool = True, mask: Optional[Tensor] = None,
                      dtype: Optional[torch.dtype] = None) -> Tuple[Tensor, Tensor]:
    r"""Reads a modality feature file, a float array ``[num_entities, d]``
    (row ``i`` = entity ``i``) saved with :func:`torch.save` (``.pt``,
    ``.pth``) or :func:`numpy.save` (``.npy``), safely (see :func:`load_array`).

    Args:
        path (str): The feature file.
        num_entities (int): Expected row count.
        nan_rows (str): ``'error'`` (default) rejects NaN/Inf values;
            ``'missing'`` treats rows holding any NaN/Inf as missing.
        zero_rows_missing (bool): Treat all-zero rows as missing (the
            released MKG-W/MKG-Y files fill missing entities with zeros);
            not used when ``mask`` is given.
        mask (torch.Tensor, optional): ``[num_entities]`` bool, the entities
            that have the modality (:func:`read_mask_file`); rows outside it
            are zeroed whatever they hold. (default: :obj:`None`)
        dtype (torch.dtype, optional): Keep the features in this floating
            dtype. (default: :obj:`None`, ``torch.float32``)

    Returns:
        ``(x, mask)``: features with missing rows zeroed, and the presence mask.
    """
    x = load_array(path)
    if x.dim() != 2 or x.size(1) == 0:
        raise MMKGFormatError(f"{path}: expected a 2-D tensor [num_entities, d] with d >= 1, "
                              f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise MMKGFormatError(f"{path}: expected floating-point features, got {x.dtype}")
    if x.size(0) != num_entities:
        raise MMKGFormatError(f"{path}: has {x.size(0)} rows but the dataset has "
                              f"{num_entities} entities")
    x = x.float()
    given = torch.ones(num_entities, dtype=torch.bool) if mask is None else mask.bool()
    finite = torch.isfinite(x).all(dim=1)
    bad = (given & ~finite).nonzero().flatten()
    if bad.numel() and nan_rows != 'missing':
        raise MMKGFormatError(f"{path}: {bad.numel()} rows hold NaN/Inf values (first: row "
                              f"{int(bad[0])}); pass nan_rows='missing' (CLI: --nan-rows "
                              f"missing) to treat them as missing")
    present = given & finite
    if zero_rows_missing and mask is None:  # a mask file decides on its own
        present &= (x != 0).any(dim=1)
    x = torch.where(present.unsqueeze(1), x, torch.zeros((), dtype=x.dtype))
    _warn_implausible(path, x, present)
    return _cast(path, x, present, dtype), present


#: the ``dtype`` names a feature file may be kept in
FEATURE_DTYPES = {'float16': torch.float16, 'bfloat16': torch.bfloat16,
                  'float32': torch.float32, 'float64': torch.float64}


def _cast(path: str, x: Tensor, mask: Tensor, dtype: Optional[torch.dtype]) -> Tensor:
    if dtype is None or dtype == x.dtype:
        return x
    y = x.to(dtype)
    if not bool(torch.isfinite(y[mask]).all()):
        raise MMKGFormatError(f"{path}: values beyond the range of {dtype} (largest |x| = "
                              f"{float(x.abs().max()):.3g}); keep it in float32")
    return y


def read_mask_file(path: str, entity_names: Sequence[str]) -> Tensor:
    """Reads which entities have a modality: a bool (or 0/1) array
    ``[num_entities]`` in a ``.npy`` / ``.pt`` / ``.pth`` file, or a ``.txt``
    file of entity names, one per line.

    Args:
        path (str): The mask file.
        entity_names (list[str]): The entity names in id order.

    Returns:
        ``[num_entities]`` bool tensor.
    """
    n = len(entity_names)
    if path.endswith('.txt'):
        index = {name: i for i, name in enumerate(entity_names)}
        mask = torch.zeros(n, dtype=torch.bool)
        for line_no, line in text_lines(path):
            name = line.strip()
            if not name:
                continue
            if name not in index:
                raise MMKGFormatError(f"{path}:{line_no}: unknown entity {shown(name)} (not among "
                                      f"the {n} entities of the dataset)")
            mask[index[name]] = True
        return mask
    m = load_array(path)
    if m.dim() == 2 and m.size(1) == 1:
        m = m.flatten()
    if m.dim() != 1:
        raise MMKGFormatError(f"{path}: expected a 1-D mask [num_entities], "
                              f"got shape {tuple(m.shape)}")
    if m.numel() != n:
        raise MMKGFormatError(f"{path}: has {m.numel()} rows but the dataset has {n} entities")
    if m.dtype != torch.bool:
        bad = ((m != 0) & (m != 1)).nonzero().flatten()
        if bad.numel():
            k = int(bad[0])
            raise MMKGFormatError(f"{path}: row {k}: mask value {m[k].item()!r} is not "
                                  f"True/False or 1/0")
    return m.bool()


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
