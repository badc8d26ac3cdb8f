r"""Entities added to a trained :class:`~native_pyg.nn.NativE` without
retraining: they have modality features but no training triple, so their
structure is missing and ReDAF places them from their features alone."""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor


class AddedEntities(torch.nn.Module):
    r"""The raw features, masks and names of the entities appended to a
    model after training, kept in its ``state_dict`` (buffers
    ``x_<modality>``, ``mask_<modality>`` and the names as extra state) so a
    checkpoint restores them (:func:`restore_added_entities`).

    Args:
        in_channels (dict[str, int]): Feature size per modality.
    """
    def __init__(self, in_channels: Mapping[str, int]):
        super().__init__()
        self.modalities = list(in_channels)
        for m, d in in_channels.items():
            self.register_buffer(f'x_{m}', torch.zeros(0, d))
            self.register_buffer(f'mask_{m}', torch.zeros(0, dtype=torch.bool))
        self.names: List[str] = []

    def append(self, features: Mapping[str, Tensor], masks: Mapping[str, Tensor],
               names: Sequence[str]) -> None:
        for m in self.modalities:
            x, mask = getattr(self, f'x_{m}'), getattr(self, f'mask_{m}')
            setattr(self, f'x_{m}', torch.cat([x, features[m].to(x)]))
            setattr(self, f'mask_{m}', torch.cat([mask, masks[m].to(mask.device)]))
        self.names.extend(names)

    def __len__(self) -> int:
        return len(self.names)

    def get_extra_state(self) -> Dict[str, List[str]]:
        return {'names': list(self.names)}

    def set_extra_state(self, state: Dict[str, List[str]]) -> None:
        self.names = list(state['names'])

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({len(self)}, modalities={self.modalities})'


def _rows(model, features: Mapping[str, Tensor], masks: Optional[Mapping[str, Tensor]]):
    """Checks new entities' features; ``(k, features, masks)`` for every
    modality of the model (absent modalities: zero rows, masked)."""
    mods = model.feature_modalities
    if not mods:
        raise ValueError("a structure-only model cannot place an entity without training "
                         "triples: it has no feature modality to read")
    features = {m: torch.as_tensor(x).detach().float() for m, x in dict(features).items()}
    masks = dict(masks or {})
    unknown = sorted((set(features) | set(masks)) - set(mods))
    if unknown or not features:
        raise ValueError(f"features given for {sorted(features)}, masks for {sorted(masks)}; "
                         f"the model's feature modalities are {mods}")
    features = {m: x.view(1, -1) if x.dim() == 1 else x for m, x in features.items()}
    counts = {m: x.size(0) for m, x in features.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"every modality needs one row per new entity, got rows {counts}")
    k = next(iter(counts.values()))
    out_x, out_mask = {}, {}
    for m in mods:
        d = model.encoders.in_channels[m]
        x = features.get(m, torch.zeros(k, d))
        if x.dim() != 2 or x.size(1) != d:
            raise ValueError(f"modality {m!r}: new features must have {d} columns, got shape "
                             f"{tuple(x.shape)}")
        mask = masks.get(m)
        mask = ((x != 0).any(dim=1) if m in features else torch.zeros(k, dtype=torch.bool)) \
            if mask is None else torch.as_tensor(mask).bool().view(-1)
        if mask.shape != (k,):
            raise ValueError(f"modality {m!r}: mask must have {k} entries, got {tuple(mask.shape)}")
        out_x[m], out_mask[m] = x, mask
    empty = ~torch.stack(list(out_mask.values()), 1).any(1)
    if bool(empty.any()):
        raise ValueError(f"new entities {empty.nonzero().view(-1).tolist()} have no present "
                         f"feature: nothing could place them")
    return k, out_x, out_mask


def append_entities(model, features: Mapping[str, Tensor],
                    masks: Optional[Mapping[str, Tensor]] = None,
                    names: Optional[Sequence[str]] = None) -> Tensor:
    """Appends entities to ``model`` (see :meth:`NativE.add_entities
    <native_pyg.nn.NativE.add_entities>`); returns their ids."""
    from native_pyg.nn.native import _random_rows
    k, features, masks = _rows(model, features, masks)
    names = [f'new_{model.num_entities + i}' for i in range(k)] if names is None else list(names)
    if len(names) != k:
        raise ValueError(f"{len(names)} names given for {k} new entities")
    old, weight = model.num_entities, model.entity_emb.weight
    # the new rows' structure is masked; their table rows are drawn only so that
    # the table stays the scorer's shape (seeded: the same model, the same rows)
    new_rows = torch.empty(k, weight.size(1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model.seed + old)
        model.scorer.init_entity_(new_rows)
    table = torch.nn.Embedding(old + k, weight.size(1)).to(weight)
    with torch.no_grad():
        table.weight.copy_(torch.cat([weight.detach(), new_rows.to(weight)]))
    model.entity_emb = table
    generator = torch.Generator().manual_seed(model.seed + old)
    for m in model.feature_modalities:
        x_old, mask_old = model.feature(m)
        x_new = features[m]
        if model.missing == 'random':  # stand-ins drawn from the stats of present rows
            present = torch.cat([x_old[mask_old].cpu().float(), x_new[masks[m]]])
            x_new = _random_rows(torch.cat([present, x_new]),
                                 torch.cat([torch.ones(present.size(0), dtype=torch.bool),
                                            masks[m]]), generator)[present.size(0):]
        setattr(model, f'x_{m}', torch.cat([x_old, x_new.to(x_old)]))
        setattr(model, f'mask_{m}', torch.cat([mask_old, masks[m].to(mask_old.device)]))
    model.num_entities = old + k
    model.mask_structure = torch.cat([model.mask_structure,
                                      torch.zeros(k, dtype=torch.bool,
                                                  device=model.mask_structure.device)])
    if model.added_entities is None:
        model.added_entities = AddedEntities(dict(model.encoders.in_channels)).to(weight.device)
    model.added_entities.append(features, masks, names)
    model._cache = {} if model._cache is not None else None
    return torch.arange(old, old + k)


def restore_added_entities(model, state_dict: Mapping[str, Tensor]) -> None:
    """Re-adds the entities a ``state_dict`` holds beyond the model's own,
    so that it loads (a checkpoint keeps its added entities)."""
    prefix = 'added_entities.'
    if model.added_entities is not None or not any(k.startswith(prefix) for k in state_dict):
        return
    features = {m: state_dict[f'{prefix}x_{m}'] for m in model.feature_modalities
                if f'{prefix}x_{m}' in state_dict}
    masks = {m: state_dict[f'{prefix}mask_{m}'] for m in features}
    extra = state_dict.get(f'{prefix}_extra_state') or {}
    if features and next(iter(features.values())).size(0):
        append_entities(model, features, masks, extra.get('names'))
