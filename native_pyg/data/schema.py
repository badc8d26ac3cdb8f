"""The multi-modal KG (MMKG) :class:`~torch_geometric.data.HeteroData` schema.

One graph per dataset, all splits inside::

    data['entity'].num_nodes, data['entity'].name            # list[str]
    data['entity', 'relation', 'entity'].edge_index          # [2, E_train] (head, tail)
    data['entity', 'relation', 'entity'].edge_type           # [E_train]
    ...val_edge_index / val_edge_type, test_edge_index / test_edge_type
    data.num_relations, data.relation_names                  # int, list[str]
    data[m].x [N, d_m] float, data[m].mask [N] bool           # one store per feature modality

Row ``i`` of every modality store belongs to entity ``i``; rows of entities
without the modality are zero and their mask is ``False``.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

ENTITY = 'entity'
REL = (ENTITY, 'relation', ENTITY)
SPLITS = ('train', 'valid', 'test')
#: split name -> attribute prefix on the relation edge store
SPLIT_PREFIX = {'train': '', 'valid': 'val_', 'test': 'test_'}
#: the modality names used by this library, in their canonical order
KNOWN_MODALITIES = ('image', 'text', 'numeric', 'audio', 'video')


class SchemaError(ValueError):
    """Raised by :func:`validate_mmkg` for a graph that breaks the MMKG schema."""


def modalities(data: HeteroData) -> List[str]:
    """The feature modalities of ``data`` (every node type but ``'entity'``),
    known ones in canonical order first."""
    names = [t for t in data.node_types if t != ENTITY]
    known = [m for m in KNOWN_MODALITIES if m in names]
    return known + sorted(m for m in names if m not in KNOWN_MODALITIES)


def split_triples(data: HeteroData, split: str = 'train') -> Tensor:
    """The ``split`` triples of ``data`` as a ``[E, 3]`` long tensor of
    ``(head, relation, tail)`` rows."""
    if split not in SPLIT_PREFIX:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    store = data[REL]
    p = SPLIT_PREFIX[split]
    ei, et = store[f'{p}edge_index'], store[f'{p}edge_type']
    return torch.stack([ei[0], et, ei[1]], dim=1)


def seen_entities(data: HeteroData, split: str = 'train') -> Tensor:
    """``[N]`` bool: the entities that occur in a ``split`` triple (an
    entity unseen in training has no learned structure)."""
    triples = split_triples(data, split)
    seen = torch.zeros(data[ENTITY].num_nodes, dtype=torch.bool)
    seen[triples[:, 0]] = True
    seen[triples[:, 2]] = True
    return seen


def split_edges(data: HeteroData, split: str = 'train') -> Tuple[Tensor, Tensor]:
    """``(edge_index [2, E], edge_type [E])`` of one split."""
    if split not in SPLIT_PREFIX:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    p = SPLIT_PREFIX[split]
    return data[REL][f'{p}edge_index'], data[REL][f'{p}edge_type']


def _as_triples(t, name: str) -> Tensor:
    t = torch.as_tensor(t)
    if t.dim() != 2 or t.size(1) != 3:
        raise SchemaError(f"{name} triples must have shape [E, 3] (head, relation, tail), "
                          f"got {tuple(t.shape)}")
    return t.long()


def build_mmkg(
    num_entities: int,
    num_relations: int,
    train: Tensor,
    valid: Optional[Tensor] = None,
    test: Optional[Tensor] = None,
    entity_names: Optional[Sequence[str]] = None,
    relation_names: Optional[Sequence[str]] = None,
    features: Optional[Mapping[str, Tensor]] = None,
    masks: Optional[Mapping[str, Tensor]] = None,
    validate: bool = True,
) -> HeteroData:
    r"""Builds the MMKG :class:`HeteroData` of a dataset.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R`.
        train, valid, test (torch.Tensor): ``[E, 3]`` triples as
            ``(head, relation, tail)`` rows (valid/test may be omitted).
        entity_names, relation_names (list[str], optional): Names; ids as
            strings when omitted.
        features (dict[str, torch.Tensor], optional): Modality name to a
            ``[N, d_m]`` float feature matrix. (default: :obj:`None`, structure only)
        masks (dict[str, torch.Tensor], optional): Modality name to a ``[N]``
            bool mask (``True`` = entity has the modality); rows outside the
            mask are zeroed. (default: every row that is not all zero)
        validate (bool): Run :func:`validate_mmkg` on the result.
    """
    data = HeteroData()
    data[ENTITY].num_nodes = int(num_entities)
    data[ENTITY].name = (list(entity_names) if entity_names is not None
                         else [str(i) for i in range(num_entities)])
    empty = torch.empty(0, 3, dtype=torch.long)
    for split, t in zip(SPLITS, (train, valid, test)):
        t = _as_triples(empty if t is None else t, split)
        p = SPLIT_PREFIX[split]
        data[REL][f'{p}edge_index'] = torch.stack([t[:, 0], t[:, 2]], dim=0).contiguous()
        data[REL][f'{p}edge_type'] = t[:, 1].contiguous()
    data.num_relations = int(num_relations)
    data.relation_names = (list(relation_names) if relation_names is not None
                           else [str(i) for i in range(num_relations)])
    masks = dict(masks or {})
    for m, x in (features or {}).items():
        if m == ENTITY:
            raise SchemaError("'entity' is reserved and cannot name a modality")
        x = torch.as_tensor(x)
        if x.dim() != 2:
            raise SchemaError(f"modality {m!r}: features must be 2-D [N, d], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise SchemaError(f"modality {m!r}: features must be floating point, got {x.dtype}")
        mask = masks.pop(m, None)
        mask = (x != 0).any(dim=1) if mask is None else torch.as_tensor(mask).bool()
        if mask.shape == (x.size(0),):
            x = x * mask.unsqueeze(1).to(x.dtype)
        data[m].x = x
        data[m].mask = mask
        data[m].num_nodes = x.size(0)
    if masks:
        raise SchemaError(f"masks given for modalities without features: {sorted(masks)}")
    if validate:
        validate_mmkg(data)
    return data


def validate_mmkg(data: HeteroData) -> HeteroData:
    """Checks every invariant of the MMKG schema and raises :class:`SchemaError`
    naming the field that breaks it. Returns ``data`` for chaining."""
    if ENTITY not in data.node_types:
        raise SchemaError("missing node store 'entity'")
    n = data[ENTITY].num_nodes
    if not isinstance(n, int) or n <= 0:
        raise SchemaError(f"data['entity'].num_nodes must be a positive int, got {n!r}")
    names = getattr(data[ENTITY], 'name', None)
    if names is None or len(names) != n:
        raise SchemaError(f"data['entity'].name must be a list of {n} names, "
                          f"got {None if names is None else len(names)}")
    r = getattr(data, 'num_relations', None)
    if not isinstance(r, int) or r <= 0:
        raise SchemaError(f"data.num_relations must be a positive int, got {r!r}")
    rnames = getattr(data, 'relation_names', None)
    if rnames is None or len(rnames) != r:
        raise SchemaError(f"data.relation_names must list {r} names, "
                          f"got {None if rnames is None else len(rnames)}")
    if REL not in data.edge_types:
        raise SchemaError(f"missing edge store {REL}")
    store = data[REL]
    for split, p in SPLIT_PREFIX.items():
        ei_key, et_key = f'{p}edge_index', f'{p}edge_type'
        field = f"data['entity', 'relation', 'entity'].{ei_key}"
        if ei_key not in store or et_key not in store:
            raise SchemaError(f"missing {split} edges: {field} / .{et_key}")
        ei, et = store[ei_key], store[et_key]
        if ei.dtype != torch.long or et.dtype != torch.long:
            raise SchemaError(f"{field} and .{et_key} must be torch.long, got {ei.dtype}, {et.dtype}")
        if ei.dim() != 2 or ei.size(0) != 2:
            raise SchemaError(f"{field} must have shape [2, E], got {tuple(ei.shape)}")
        if et.dim() != 1 or et.numel() != ei.size(1):
            raise SchemaError(f".{et_key} must have shape [{ei.size(1)}], got {tuple(et.shape)}")
        if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
            raise SchemaError(f"{field} has entity ids outside [0, {n}): "
                              f"min {int(ei.min())}, max {int(ei.max())}")
        if et.numel() and (int(et.min()) < 0 or int(et.max()) >= r):
            raise SchemaError(f".{et_key} has relation ids outside [0, {r}): "
                              f"min {int(et.min())}, max {int(et.max())}")
    if store['edge_index'].size(1) == 0:
        raise SchemaError("the training split is empty")
    for m in modalities(data):
        s = data[m]
        x, mask = getattr(s, 'x', None), getattr(s, 'mask', None)
        if x is None or mask is None:
            raise SchemaError(f"modality store data[{m!r}] needs both .x and .mask")
        if x.dim() != 2 or x.size(0) != n:
            raise SchemaError(f"data[{m!r}].x must have shape [{n}, d], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise SchemaError(f"data[{m!r}].x must be floating point, got {x.dtype}")
        if mask.dtype != torch.bool or mask.shape != (n,):
            raise SchemaError(f"data[{m!r}].mask must be a bool tensor of shape [{n}], "
                              f"got {mask.dtype} {tuple(mask.shape)}")
        if not torch.isfinite(x).all():
            raise SchemaError(f"data[{m!r}].x holds NaN or Inf values")
        if (x[~mask] != 0).any():
            raise SchemaError(f"data[{m!r}].x has non-zero rows where data[{m!r}].mask is False")
    return data


def feature_dict(data: HeteroData) -> Dict[str, Tuple[Tensor, Tensor]]:
    """``{modality: (x, mask)}`` read through the store API."""
    return {m: (data[m].x, data[m].mask) for m in modalities(data)}


def fingerprint(data: HeteroData) -> Dict[str, object]:
    """What a checkpoint records of the data it was trained on: the counts of
    entities, relations and triples per split, the feature modalities, and a
    SHA-256 over the triples of every split and every modality's features
    and mask. Two loads of the same files give the same fingerprint."""
    import hashlib
    h = hashlib.sha256()
    counts: Dict[str, object] = {'entities': int(data[ENTITY].num_nodes),
                                 'relations': int(data.num_relations)}
    for split in SPLITS:
        triples = split_triples(data, split).contiguous()
        counts[split] = int(triples.size(0))
        h.update(split.encode())
        h.update(triples.numpy())
    for m, (x, mask) in feature_dict(data).items():
        h.update(m.encode())
        h.update(x.detach().float().contiguous().numpy())
        h.update(mask.numpy())
    return {**counts, 'modalities': modalities(data), 'sha256': h.hexdigest()}


def fingerprint_differences(saved: Mapping[str, object], now: Mapping[str, object]) -> str:
    """The differences of two :func:`fingerprint` results, in words ('' if none)."""
    keys = [k for k in saved if k != 'sha256' and saved.get(k) != now.get(k)]
    if keys:
        return ', '.join(f'{k} {saved.get(k)} -> {now.get(k)}' for k in keys)
    if saved.get('sha256') != now.get('sha256'):
        return 'same counts but different triples or feature values'
    return ''
