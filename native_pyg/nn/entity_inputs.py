r"""What an entity brings into a model besides its learned parameters: the
raw features and presence masks of every feature modality, whether it has
a structure (occurs in the training graph), the training graph itself, and
the entities added after training.

:class:`EntityInputs` is the one owner of these. :class:`~native_pyg.nn.NativE`
asks it for rows by entity id (:meth:`EntityInputs.rows`,
:meth:`EntityInputs.mask`, :meth:`EntityInputs.has_structure`) and never
reads its storage, so a store that keeps the rows elsewhere (e.g. memory-mapped
on disk) can replace the resident buffers behind the same methods.
"""
from __future__ import annotations

from typing import (Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple,
                    runtime_checkable)

import torch
from torch import Tensor

from native_pyg.data.relations import add_inverse_edges
from native_pyg.loader.neighbor_loader import TrainingGraph
from native_pyg.nn.missing import Missing
from native_pyg.nn.projections import check_modality_names


@runtime_checkable
class RowStore(Protocol):
    r"""A feature store entity inputs read rows from (:attr:`EntityInputs.store`),
    as :class:`~native_pyg.data.feature_store.DiskFeatureStore` is: a PyG
    :class:`~torch_geometric.data.FeatureStore` whose groups are modalities
    with attributes ``'x'`` (rows) and ``'mask'``, that knows its
    :attr:`num_entities` and feature sizes :attr:`dims`, and whose
    :meth:`identity` changes when it is rewritten (a run records it, and a
    checkpoint refuses a rewritten store)."""

    num_entities: int
    dims: Mapping[str, int]

    def get_tensor(self, *args: Any, **kwargs: Any) -> Tensor:
        ...

    def identity(self) -> str:
        ...


def random_rows(x: Tensor, mask: Tensor, generator: torch.Generator) -> Tensor:
    r"""``x`` with its missing rows (``~mask``) replaced by fixed random rows
    drawn per dimension from :math:`\mathcal{N}(\mu, \sigma^2)`, with
    :math:`\mu, \sigma` the mean and spread of the present rows (the
    authors' stand-ins for missing features, ``missing='random'``)."""
    missing = ~mask
    if not bool(missing.any()):
        return x
    present = x[mask].double()
    mean = present.mean(0) if present.size(0) else x.new_zeros(x.size(1)).double()
    std = present.std(0) if present.size(0) > 1 else torch.ones_like(mean)
    noise = torch.randn(int(missing.sum()), x.size(1), generator=generator, dtype=torch.double)
    x = x.clone()
    x[missing] = (noise * std.clamp(min=1e-6) + mean).to(x.dtype)
    return x


class AddedEntities(torch.nn.Module):
    r"""The raw features, masks and names of the entities added to a model
    after training, kept in its ``state_dict`` (buffers ``x_<modality>``,
    ``mask_<modality>``, the names as extra state) so that a checkpoint
    restores them.

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
        """Appends the rows of ``len(names)`` entities."""
        for m in self.modalities:
            x, mask = self.get_buffer(f'x_{m}'), self.get_buffer(f'mask_{m}')
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


class EntityInputs(torch.nn.Module):
    r"""Everything an entity brings in besides its learned parameters, for
    :math:`N` entities:

    * per feature modality :math:`m`, the frozen raw features
      :math:`\mathbf{X}_m \in \mathbb{R}^{N \times d_m}` and the presence
      mask :math:`\mathbf{k}_m \in \{0, 1\}^N`; under ``missing='random'``
      missing rows hold fixed random rows (:func:`random_rows`, seeded);
    * the structure mask: whether an entity occurs in the training graph;
    * the training graph with inverse edges (triple :math:`(h, r, t)` is the
      edge :math:`h \to t` of type :math:`r` and :math:`t \to h` of type
      :math:`r + R`), which a structural encoder runs over;
    * the entities added after training (:meth:`append`), which have
      features but no structure.

    Features, masks, structure mask and graph are non-persistent buffers
    (frozen, moved by :meth:`to`, absent from :meth:`state_dict`: the data
    provides them); added entities are persistent (:attr:`added`).
    :attr:`version` counts changes, so caches built from these rows know
    when they are stale.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R`.
        in_channels (dict[str, int]): Feature size :math:`d_m` per feature
            modality, in order.
        missing (str, optional): ``'mask'``, ``'random'`` or ``'zero'``, as
            :class:`~native_pyg.nn.NativE`. (default: ``'mask'``)
        seed (int, optional): Seed of the ``missing='random'`` rows.
            (default: :obj:`0`)
    """

    def __init__(self, num_entities: int, num_relations: int, in_channels: Mapping[str, int],
                 missing: str = 'mask', seed: int = 0):
        super().__init__()
        self.num_entities, self.num_relations = int(num_entities), int(num_relations)
        self.in_channels: Dict[str, int] = {m: int(d) for m, d in in_channels.items()}
        check_modality_names(self.in_channels)
        self.missing, self.seed = Missing.of(missing), int(seed)
        self.version = 0
        self.added: Optional[AddedEntities] = None
        for m, d in self.in_channels.items():
            # placeholders until set_features (they carry the dtype .to() gives them)
            self.register_buffer(f'x_{m}', torch.zeros(0, d), persistent=False)
            self.register_buffer(f'mask_{m}', torch.zeros(0, dtype=torch.bool), persistent=False)
        self.register_buffer('structure_mask', torch.ones(self.num_entities, dtype=torch.bool),
                             persistent=False)
        self.register_buffer('edge_index', torch.empty(2, 0, dtype=torch.long), persistent=False)
        self.register_buffer('edge_type', torch.empty(0, dtype=torch.long), persistent=False)

    #: the feature store the rows are read from (set by
    #: :class:`~native_pyg.nn.stored_inputs.StoredEntityInputs`); :obj:`None`
    #: where the rows are held in memory
    store: Optional[RowStore] = None

    @property
    def modalities(self) -> List[str]:
        """The feature modality names, in order."""
        return list(self.in_channels)

    @property
    def device(self) -> torch.device:
        return self.structure_mask.device

    @property
    def added_names(self) -> List[str]:
        """Names of the entities added after training, in id order."""
        return list(self.added.names) if self.added is not None else []

    def check_fits(self, num_entities: int, num_relations: int, missing: str) -> Dict[str, int]:
        """The feature sizes :attr:`in_channels`, after checking that these
        inputs fit a model of ``num_entities``, ``num_relations`` and
        ``missing`` (a one-line :class:`ValueError` otherwise)."""
        got = (self.num_entities, self.num_relations, self.missing)
        if got != (int(num_entities), int(num_relations), missing):
            raise ValueError(f"entity inputs of (entities, relations, missing) = {got} given to "
                             f"a model of ({num_entities}, {num_relations}, {missing!r})")
        return dict(self.in_channels)

    # ------------------------------------------------------------------ reads
    def feature_dtype(self, modality: str) -> torch.dtype:
        """The dtype :meth:`rows` returns for ``modality`` (that of the
        model, after :meth:`to`), known without reading a row."""
        return self.get_buffer(f'x_{modality}').dtype

    def rows(self, modality: str, index: Optional[Tensor] = None) -> Tensor:
        r"""``[U, d_m]`` raw feature rows of the entities ``index`` (``None``:
        all :math:`N`, without a copy)."""
        x = self.get_buffer(f'x_{modality}')
        return x if index is None else x[index]

    def mask(self, modality: str, index: Optional[Tensor] = None) -> Tensor:
        r"""``[U]`` presence of ``modality`` for the entities ``index``
        (``None``: all)."""
        mask = self.get_buffer(f'mask_{modality}')
        return mask if index is None else mask[index]

    def has_structure(self, index: Optional[Tensor] = None) -> Tensor:
        r"""``[U]`` whether the entities ``index`` (``None``: all) occur in the
        training graph (entities added after training never do)."""
        return self.structure_mask if index is None else self.structure_mask[index]

    def graph(self) -> Tuple[Tensor, Tensor]:
        r"""``(edge_index [2, 2E], edge_type [2E])``: the training graph with
        inverse edges (types :math:`r + R`), built on each call from the
        ``E`` triples kept (the inverse copies would double the graph's
        memory, 0.8 GB at wikikg2's 16 M triples, for the few calls that
        encode the whole graph)."""
        return add_inverse_edges(self.edge_index, self.edge_type, self.num_relations)

    def training_graph(self) -> TrainingGraph:
        r"""The training graph's ``E`` triples as a
        :class:`~native_pyg.loader.neighbor_loader.TrainingGraph` (their
        compressed columns, with no ``[2, 2E]`` inverse-edge arrays), built
        on each call."""
        return TrainingGraph(self.edge_index, self.edge_type, self.num_entities,
                             self.num_relations)

    # ----------------------------------------------------------------- writes
    def set_features(self, features: Mapping[str, Tensor],
                     masks: Optional[Mapping[str, Tensor]] = None) -> None:
        r"""Sets (or swaps, e.g. after a missing-modality transform) the raw
        features ``[N, d_m]`` and masks ``[N]`` (default: non-zero rows) of
        every feature modality; names and sizes must match :attr:`in_channels`."""
        features, masks = dict(features or {}), dict(masks or {})
        if sorted(features) != sorted(self.modalities):
            raise ValueError(f"features for {sorted(features)} given; the model has "
                             f"{sorted(self.modalities)}")
        if unknown := sorted(set(masks) - set(features)):
            raise ValueError(f"masks given for modalities without features: {unknown}")
        device = self.device
        generator = torch.Generator().manual_seed(self.seed)
        for m in self.modalities:
            x = torch.as_tensor(features[m]).detach()
            if not x.is_floating_point():
                raise ValueError(f"modality {m!r}: features must be floating point, got {x.dtype}")
            if x.dim() != 2 or x.size(0) != self.num_entities:
                raise ValueError(f"modality {m!r}: features must have shape "
                                 f"[{self.num_entities}, d], got {tuple(x.shape)}")
            if x.size(1) != self.in_channels[m]:
                raise ValueError(f"modality {m!r}: feature size {x.size(1)} differs from the "
                                 f"projection's {self.in_channels[m]}")
            mask = masks.get(m)
            mask = (x != 0).any(dim=1) if mask is None else torch.as_tensor(mask).bool()
            if mask.shape != (self.num_entities,):
                raise ValueError(f"modality {m!r}: mask must have shape [{self.num_entities}], "
                                 f"got {tuple(mask.shape)}")
            x, mask = x.cpu().float(), mask.cpu()
            if self.missing.drawn:
                x = random_rows(x, mask, generator)
            self.register_buffer(f'x_{m}', x.to(device, self.feature_dtype(m)), persistent=False)
            self.register_buffer(f'mask_{m}', mask.to(device), persistent=False)
        self.version += 1

    def set_graph(self, edge_index: Tensor, edge_type: Tensor) -> None:
        r"""Sets the training graph (``edge_index [2, E]`` head -> tail,
        ``edge_type [E]``; inverse edges are added here); a non-empty graph
        also sets the structure mask (:meth:`set_structure_mask`)."""
        edge_index, edge_type = torch.as_tensor(edge_index).long(), torch.as_tensor(edge_type).long()
        if edge_index.dim() != 2 or edge_index.size(0) != 2 or edge_type.shape != edge_index[0].shape:
            raise ValueError(f"the graph needs edge_index [2, E] and edge_type [E], got "
                             f"{tuple(edge_index.shape)} and {tuple(edge_type.shape)}")
        if edge_index.numel() and (int(edge_index.min()) < 0
                                   or int(edge_index.max()) >= self.num_entities):
            raise ValueError(f"edge_index holds entity ids outside [0, {self.num_entities})")
        if edge_type.numel() and not 0 <= int(edge_type.min()) <= int(edge_type.max()) < self.num_relations:
            raise ValueError(f"edge_type holds relation ids outside [0, {self.num_relations})")
        if edge_index.numel():
            seen = torch.zeros(self.num_entities, dtype=torch.bool)
            seen[edge_index.reshape(-1).cpu()] = True
            self.set_structure_mask(seen)
        # kept as given (no copy of a graph's arrays on the same device)
        self.edge_index, self.edge_type = edge_index.to(self.device), edge_type.to(self.device)
        self.version += 1

    def set_structure_mask(self, seen: Tensor) -> None:
        r"""Sets which entities have a structure: ``seen`` ``[N]`` bool,
        normally "occurs in a training triple"."""
        seen = torch.as_tensor(seen).bool()
        if seen.shape != (self.num_entities,):
            raise ValueError(f"the structure mask must have shape [{self.num_entities}], "
                             f"got {tuple(seen.shape)}")
        self.structure_mask = seen.to(self.device)
        self.version += 1

    def append(self, features: Mapping[str, Tensor],
               masks: Optional[Mapping[str, Tensor]] = None,
               names: Optional[Sequence[str]] = None) -> Tensor:
        r"""Adds entities that have features but no structure, after the
        :math:`N` existing ones; returns their ids ``N, ..., N + k - 1``. The
        arguments are those of :meth:`NativE.add_entities
        <native_pyg.nn.NativE.add_entities>`, which also grows the model's
        entity table."""
        k, features, masks = self._check_added(features, masks)
        old = self.num_entities
        names = [f'added_{old + i}' for i in range(k)] if names is None else list(names)
        if len(names) != k:
            raise ValueError(f"{len(names)} names given for {k} added entities")
        generator = torch.Generator().manual_seed(self.seed + old)
        for m in self.modalities:
            x_old, mask_old = self.rows(m), self.mask(m)
            x_new = features[m]
            if self.missing.drawn:  # stand-ins drawn from the stats of present rows
                present = torch.cat([x_old[mask_old].cpu().float(), x_new[masks[m]]])
                x_new = random_rows(torch.cat([present, x_new]),
                                    torch.cat([torch.ones(present.size(0), dtype=torch.bool),
                                               masks[m]]), generator)[present.size(0):]
            self.register_buffer(f'x_{m}', torch.cat([x_old, x_new.to(x_old)]), persistent=False)
            self.register_buffer(f'mask_{m}', torch.cat([mask_old, masks[m].to(mask_old.device)]),
                                 persistent=False)
        return self._record_added(features, masks, names)

    def _record_added(self, features: Mapping[str, Tensor], masks: Mapping[str, Tensor],
                      names: Sequence[str]) -> Tensor:
        """Counts, masks the structure of, and records the ``len(names)``
        entities whose rows were just appended; returns their ids."""
        old, k = self.num_entities, len(names)
        self.num_entities = old + k
        self.structure_mask = torch.cat([self.structure_mask,
                                         torch.zeros(k, dtype=torch.bool, device=self.device)])
        if self.added is None:
            self.added = AddedEntities(self.in_channels).to(self.device)
        self.added.append(features, masks, names)
        self.version += 1
        return torch.arange(old, old + k)

    def added_state(self, state_dict: Mapping[str, Tensor], prefix: str = 'added.'
                    ) -> Optional[Tuple[Dict[str, Tensor], Dict[str, Tensor], List[str]]]:
        """``(features, masks, names)`` of the added entities a ``state_dict``
        holds under ``prefix``, or ``None`` (none, or already added here)."""
        if self.added is not None:
            return None
        features = {m: state_dict[f'{prefix}x_{m}'] for m in self.modalities
                    if f'{prefix}x_{m}' in state_dict}
        if not features or next(iter(features.values())).size(0) == 0:
            return None
        masks = {m: state_dict[f'{prefix}mask_{m}'] for m in features}
        extra = state_dict.get(f'{prefix}_extra_state') or {}
        return features, masks, extra.get('names')

    def _check_added(self, features: Mapping[str, Tensor], masks: Optional[Mapping[str, Tensor]]
                     ) -> Tuple[int, Dict[str, Tensor], Dict[str, Tensor]]:
        """``(k, features, masks)`` for every modality (absent ones: zero
        rows, masked), after checking shapes and that each entity has a
        present feature."""
        mods = self.modalities
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
            raise ValueError(f"every modality needs one row per added entity, got rows {counts}")
        k = next(iter(counts.values()))
        out_x, out_mask = {}, {}
        for m in mods:
            d = self.in_channels[m]
            x = features.get(m, torch.zeros(k, d))
            if x.dim() != 2 or x.size(1) != d:
                raise ValueError(f"modality {m!r}: added features must have {d} columns, got "
                                 f"shape {tuple(x.shape)}")
            mask = masks.get(m)
            mask = ((x != 0).any(dim=1) if m in features else torch.zeros(k, dtype=torch.bool)) \
                if mask is None else torch.as_tensor(mask).bool().view(-1)
            if mask.shape != (k,):
                raise ValueError(f"modality {m!r}: mask must have {k} entries, got "
                                 f"{tuple(mask.shape)}")
            out_x[m], out_mask[m] = x, mask
        empty = ~torch.stack(list(out_mask.values()), 1).any(1)
        if bool(empty.any()):
            raise ValueError(f"added entities {empty.nonzero().view(-1).tolist()} have no present "
                             f"feature: nothing could place them")
        return k, out_x, out_mask

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_entities}, modalities={self.modalities}, '
                f'missing={self.missing!r}, edges={self.edge_index.size(1)}, '
                f'added={len(self.added_names)})')
