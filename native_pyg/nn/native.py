r"""The NativE model: structural embeddings, modality encoders, ReDAF and a
score function, over PyG-style index batches."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from native_pyg.nn.encoders import STRUCTURE, ModalityEncoders, check_modality_names
from native_pyg.data.relations import add_inverse_edges
from native_pyg.nn.gnn import ENCODERS
from native_pyg.nn.new_entities import AddedEntities, append_entities, restore_added_entities
from native_pyg.nn.redaf import ReDAF, check_fusion_options
from native_pyg.nn.scorers import SCORERS, KGScorer
from native_pyg.nn.structure_stand_in import StructureStandIn


def unpack_triples(head_or_edge_index: Tensor, rel_or_edge_type: Tensor,
                   tail_index: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """``(head_index, rel_type, tail_index)`` from either that triple or an
    edge-index batch ``(edge_index [2, B], edge_type [B])``."""
    if tail_index is None:
        edge_index = head_or_edge_index
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError("expected (head_index, rel_type, tail_index) or "
                             f"(edge_index [2, B], edge_type [B]); got a first argument of "
                             f"shape {tuple(edge_index.shape)} and no tail_index")
        return edge_index[0], rel_or_edge_type, edge_index[1]
    return head_or_edge_index, rel_or_edge_type, tail_index


def _random_rows(x: Tensor, mask: Tensor, generator: torch.Generator) -> Tensor:
    """``x`` with its missing rows replaced by fixed random rows drawn per
    dimension from a normal with the mean and spread of the present rows."""
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


class _Subgraph:
    """The graph a training step encodes: global ids ``n_id`` of its nodes,
    local edges (inverse edges included), optional feature rows of ``n_id``
    and the lazily computed structural embeddings of its nodes."""

    def __init__(self, n_id: Tensor, edge_index: Tensor, edge_type: Tensor, num_entities: int,
                 x_dict: Optional[Mapping[str, Tensor]], mask_dict: Optional[Mapping[str, Tensor]]):
        self.n_id, self.edge_index, self.edge_type = n_id, edge_index, edge_type
        self.local = torch.full((num_entities,), -1, dtype=torch.long, device=n_id.device)
        self.local[n_id] = torch.arange(n_id.numel(), device=n_id.device)
        self.x_dict, self.mask_dict = dict(x_dict or {}), dict(mask_dict or {})
        self.structure: Optional[Tensor] = None

    def to_local(self, entity_index: Tensor) -> Tensor:
        out = self.local[entity_index]
        if bool((out < 0).any()):
            raise ValueError("an entity of the batch is not a node of the active subgraph "
                             "(its sampled neighbourhood must contain every scored entity)")
        return out


class NativE(torch.nn.Module):
    r"""NativE: multi-modal KG completion "in the wild", any number and
    names of modalities, any of them missing for any entity.

    Every entity :math:`e` has a structural embedding :math:`\mathbf{e}_s`
    (a learned table row, or with ``encoder`` the output of a relational
    GNN over the training graph whose input is that table) and, per feature
    modality :math:`m` it has, a
    projection :math:`\mathbf{e}_m = P_m(\mathbf{x}_m)` of its frozen raw
    feature (:class:`ModalityEncoders`). In the context of relation
    :math:`r` they are fused by :class:`ReDAF` into
    :math:`\mathbf{e}_{\mathrm{joint}}(e, r)` and scored,

    .. math::
        S(h, r, t) = f\big(\mathbf{e}_{\mathrm{joint}}(h, r),\ \mathbf{r},\
        \mathbf{e}_{\mathrm{joint}}(t, r)\big),

    with :math:`f` a :class:`KGScorer` (RotatE by default:
    :math:`\gamma - \| \mathbf{h} \circ \mathbf{r} - \mathbf{t} \|`).
    Without feature modalities this is the plain score function on
    structural embeddings.

    Raw features and masks are non-persistent buffers: frozen, moved by
    :meth:`to`, absent from :meth:`state_dict`. Every scoring entry point
    embeds each *unique* entity of its batch once and gathers.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R`.
        hidden_channels (int): Embedding dimension :math:`d` (RotatE and
            ComplEx entities hold :math:`2d` reals).
        features (dict[str, torch.Tensor], optional): Modality name to raw
            features ``[N, d_m]`` (row ``i`` = entity ``i``).
        masks (dict[str, torch.Tensor], optional): Modality name to a
            ``[N]`` bool presence mask; default: non-zero rows.
        scorer (str or KGScorer, optional): ``'rotate'``, ``'transe'``,
            ``'distmult'``, ``'complex'`` or a scorer instance.
            (default: ``'rotate'``)
        margin (float, optional): :math:`\gamma` (default: :obj:`12.0`).
        epsilon (float, optional): :math:`\epsilon` of the initialisation
            ranges (default: :obj:`2.0`).
        missing (str, optional): ``'mask'``: a missing modality takes no part
            (weight :math:`0`); ``'random'``: a missing modality keeps a fixed
            random raw feature and takes part; ``'zero'``: the zero rows take
            part. (default: ``'mask'``)
        relation_temperature (bool, optional): Learn :math:`\tau_r`
            (default: :obj:`True`).
        fusion (str, optional): ``'redaf'`` or ``'mean'`` (default:
            ``'redaf'``).
        seed (int, optional): Seed of the initialisation and of the
            ``missing='random'`` rows (the global RNG is left untouched).
            (default: :obj:`0`)
        encoder (str or torch.nn.Module, optional): Structural encoder:
            ``None`` (the paper's lookup table), ``'rgcn'``, ``'compgcn'``
            (:mod:`native_pyg.nn.gnn`) or any module called as
            ``encoder(x [n, De], edge_index [2, E], edge_type [E]) -> [n, De]``
            on a graph with inverse edges (types :math:`r + R`).
            (default: :obj:`None`)
        encoder_kwargs (dict, optional): Arguments of a named encoder
            (``num_layers``, ``dropout``, ``num_bases``, ``composition``...).
        encoder_input (str, optional): The encoder's input: ``'structure'``
            (the entity table) or ``'structure+modalities'`` (the table plus
            the mean of the entity's projected modality embeddings, so
            messages carry modality information). (default: ``'structure'``)
        edge_index (torch.Tensor, optional): ``[2, E]`` training edges
            (head, tail) the encoder runs over outside :meth:`subgraph`.
        edge_type (torch.Tensor, optional): ``[E]`` their relations.
        structure_mask (bool, optional): Treat structure as a modality that
            can be missing (under ``missing='mask'`` with feature
            modalities): an entity in no edge of the training graph
            (``edge_index``; see :meth:`set_structure_mask`) has its
            structural embedding masked out, so its joint embedding comes
            from its feature modalities alone (structure weight exactly
            :math:`0`). Fallback: an entity with neither structure nor any
            feature keeps its (untrained) structural row, as without this
            option. :obj:`False` is the paper's behaviour (structure always
            present). (default: :obj:`True`)
        structure_stand_in (bool, optional): With ``structure_mask``, add a
            :class:`StructureStandIn` (:attr:`stand_in`): once fitted after
            training (:func:`~native_pyg.training.fit_structure_stand_in`),
            an entity without training triples that has a feature gets its
            generated structure instead of none. (default: :obj:`False`)
    """

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        hidden_channels: int,
        features: Optional[Mapping[str, Tensor]] = None,
        masks: Optional[Mapping[str, Tensor]] = None,
        scorer: Union[str, KGScorer] = 'rotate',
        margin: float = 12.0,
        epsilon: float = 2.0,
        missing: str = 'mask',
        relation_temperature: bool = True,
        fusion: str = 'redaf',
        seed: int = 0,
        encoder: Optional[Union[str, torch.nn.Module]] = None,
        encoder_kwargs: Optional[Mapping] = None,
        encoder_input: str = 'structure',
        edge_index: Optional[Tensor] = None,
        edge_type: Optional[Tensor] = None,
        structure_mask: bool = True,
        structure_stand_in: bool = False,
    ):
        super().__init__()
        if encoder_input not in ('structure', 'structure+modalities'):
            raise ValueError(f"encoder_input must be 'structure' or 'structure+modalities', "
                             f"got {encoder_input!r}")
        check_fusion_options(fusion, missing)  # also without feature modalities (no ReDAF)
        self.num_entities = int(num_entities)
        self.num_relations = int(num_relations)
        self.hidden_channels = int(hidden_channels)
        self.margin = float(margin)
        self.epsilon = float(epsilon)
        self.missing = missing
        self.seed = int(seed)
        if isinstance(scorer, str):
            if scorer.lower() not in SCORERS:
                raise ValueError(f"unknown scorer {scorer!r}; expected one of {sorted(SCORERS)}")
            scorer = SCORERS[scorer.lower()](hidden_channels, margin=margin, epsilon=epsilon)
        self.scorer = scorer
        self.entity_dim = scorer.entity_dim
        # a given scorer instance decides the margin used by every loss
        self.margin = float(getattr(scorer, 'margin', self.margin))

        features = dict(features or {})
        self.feature_modalities: List[str] = check_modality_names(features)
        self.encoders: Optional[ModalityEncoders] = None
        self.fusion: Optional[ReDAF] = None
        # construction draws default initialisations; keep them off the global RNG
        with torch.random.fork_rng(devices=[]):
            self.entity_emb = torch.nn.Embedding(self.num_entities, scorer.entity_dim)
            self.rel_emb = torch.nn.Embedding(self.num_relations, scorer.relation_dim)
            if self.feature_modalities:
                self.encoders = ModalityEncoders(
                    {m: torch.as_tensor(x).size(-1) for m, x in features.items()}, self.entity_dim)
                self.fusion = ReDAF(self.entity_dim, self.num_relations,
                                    relation_temperature=relation_temperature, fusion=fusion,
                                    missing=missing,
                                    theta_range=(self.margin + self.epsilon) / self.entity_dim)
            if isinstance(encoder, str):
                if encoder not in ENCODERS:
                    raise ValueError(f"unknown encoder {encoder!r}; expected one of "
                                     f"{sorted(ENCODERS)} or a module")
                encoder = ENCODERS[encoder](self.entity_dim, self.num_relations,
                                            **dict(encoder_kwargs or {}))
        self.structural_encoder: Optional[torch.nn.Module] = encoder
        self.encoder_input = encoder_input
        self.structure_mask = bool(structure_mask)
        self.stand_in: Optional[StructureStandIn] = None
        if structure_stand_in:
            if not self.masks_structure:
                raise ValueError("structure_stand_in needs feature modalities, "
                                 "structure_mask=True and missing='mask'")
            with torch.random.fork_rng(devices=[]):
                self.stand_in = StructureStandIn(self.feature_modalities, self.entity_dim)
        self._cache: Optional[Dict] = None
        self._subgraph: Optional[_Subgraph] = None
        self._hidden: Optional[Tensor] = None  # structure hidden for this step (dropout)
        self.added_entities: Optional[AddedEntities] = None
        self.register_buffer('mask_structure', torch.ones(self.num_entities, dtype=torch.bool),
                             persistent=False)
        self.set_features(features, masks)
        empty = torch.empty(2, 0, dtype=torch.long)
        self.set_graph(empty if edge_index is None else edge_index,
                       empty[0] if edge_type is None else edge_type)
        self.reset_parameters()

    # ------------------------------------------------------------------ setup
    @classmethod
    def from_data(cls, data, hidden_channels: int, modalities: Optional[Sequence[str]] = None,
                  **kwargs) -> 'NativE':
        r"""Builds the model of an MMKG :class:`~torch_geometric.data.HeteroData`
        (see :mod:`native_pyg.data.schema`), reading ``data[m].x`` and
        ``data[m].mask`` through the store API.

        Args:
            data (HeteroData): The MMKG graph.
            hidden_channels (int): Embedding dimension :math:`d`.
            modalities (list[str], optional): Feature modalities to use;
                ``None`` = all of the graph's, ``[]`` = structure only.
            **kwargs: Further :class:`NativE` arguments.
        """
        from native_pyg.data.schema import ENTITY, modalities as data_modalities, split_edges
        names = data_modalities(data) if modalities is None else list(modalities)
        features = {m: data[m].x for m in names}
        masks = {m: data[m].mask for m in names}
        edge_index, edge_type = split_edges(data, 'train')
        return cls(data[ENTITY].num_nodes, data.num_relations, hidden_channels,
                   features=features, masks=masks, edge_index=edge_index, edge_type=edge_type,
                   **kwargs)

    def set_graph(self, edge_index: Tensor, edge_type: Tensor):
        r"""Sets the training graph the structural encoder runs over outside
        :meth:`subgraph` (inverse edges are added here); a non-empty graph
        also sets which entities have a structure (:meth:`set_structure_mask`)."""
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
        edge_index, edge_type = add_inverse_edges(edge_index, edge_type, self.num_relations)
        device = self.entity_emb.weight.device
        self.register_buffer('graph_edge_index', edge_index.to(device), persistent=False)
        self.register_buffer('graph_edge_type', edge_type.to(device), persistent=False)
        self._cache = {} if self._cache is not None else None

    def set_structure_mask(self, seen: Tensor):
        r"""Sets which entities have a structure: ``seen`` ``[N]`` bool,
        normally "occurs in a training triple". Used under
        ``structure_mask=True`` (see the class)."""
        seen = torch.as_tensor(seen).bool()
        if seen.shape != (self.num_entities,):
            raise ValueError(f"the structure mask must have shape [{self.num_entities}], "
                             f"got {tuple(seen.shape)}")
        self.mask_structure = seen.to(self.entity_emb.weight.device)
        self._cache = {} if self._cache is not None else None

    @property
    def masks_structure(self) -> bool:
        """Whether structure takes part as a maskable modality."""
        return self.structure_mask and self.missing == 'mask' and self.fusion is not None

    @contextmanager
    def hidden_structure(self, hidden: Tensor) -> Iterator['NativE']:
        r"""Context in which the structure of the entities where ``hidden``
        (``[N]`` bool) is treated as missing, e.g. structure dropout during
        a training step (:class:`~native_pyg.training.StructureDropout`).
        Entities without any feature keep their structure."""
        previous, self._hidden = self._hidden, torch.as_tensor(hidden, device=self.device).bool()
        try:
            yield self
        finally:
            self._hidden = previous

    def _structure_present(self, entity_index: Optional[Tensor], present: List[Tensor],
                           like: Tensor) -> Tensor:
        """``[U]`` presence of the structure column (all ``True`` unless
        structure is masked); never removes an entity's last modality."""
        ones = torch.ones(like.size(0), dtype=torch.bool, device=like.device)
        if not self.masks_structure or not present:
            return ones
        has = self.mask_structure
        if self._hidden is not None:
            has = has & ~self._hidden
        has = has if entity_index is None else has[entity_index]
        return has | ~torch.stack(present, 1).any(1)

    def set_features(self, features: Mapping[str, Tensor],
                     masks: Optional[Mapping[str, Tensor]] = None):
        r"""Sets (or swaps, e.g. after a missing-modality transform) the raw
        features and masks of the model's feature modalities. The modality
        names and feature sizes must match those the model was built with.
        Under ``missing='random'`` missing rows get fixed random rows (seeded);
        under ``'mask'`` rows outside the mask are never read."""
        features, masks = dict(features or {}), dict(masks or {})
        if sorted(features) != sorted(self.feature_modalities):
            raise ValueError(f"features for {sorted(features)} given; the model has "
                             f"{sorted(self.feature_modalities)}")
        if unknown := sorted(set(masks) - set(features)):
            raise ValueError(f"masks given for modalities without features: {unknown}")
        device, dtype = self.entity_emb.weight.device, self.entity_emb.weight.dtype
        generator = torch.Generator().manual_seed(self.seed)
        for m in self.feature_modalities:
            x = torch.as_tensor(features[m]).detach()
            if not x.is_floating_point():
                raise ValueError(f"modality {m!r}: features must be floating point, got {x.dtype}")
            if x.dim() != 2 or x.size(0) != self.num_entities:
                raise ValueError(f"modality {m!r}: features must have shape "
                                 f"[{self.num_entities}, d], got {tuple(x.shape)}")
            if x.size(1) != self.encoders.in_channels[m]:
                raise ValueError(f"modality {m!r}: feature size {x.size(1)} differs from the "
                                 f"encoder's {self.encoders.in_channels[m]}")
            mask = masks.get(m)
            mask = (x != 0).any(dim=1) if mask is None else torch.as_tensor(mask).bool()
            if mask.shape != (self.num_entities,):
                raise ValueError(f"modality {m!r}: mask must have shape [{self.num_entities}], "
                                 f"got {tuple(mask.shape)}")
            x = x.cpu().float()
            mask = mask.cpu()
            if self.missing == 'random':
                x = _random_rows(x, mask, generator)
            self.register_buffer(f'x_{m}', x.to(device, dtype), persistent=False)
            self.register_buffer(f'mask_{m}', mask.to(device), persistent=False)
        self._cache = {} if self._cache is not None else None

    def reset_parameters(self):
        r"""Resets all learnable parameters (deterministically, from ``seed``)."""
        devices = sorted({p.device.index or 0 for p in self.parameters() if p.is_cuda})
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            self.scorer.init_entity_(self.entity_emb.weight.data)
            self.scorer.init_relation_(self.rel_emb.weight.data)
            if self.encoders is not None:
                self.encoders.reset_parameters()
            if self.fusion is not None:
                self.fusion.reset_parameters()
            if hasattr(self.structural_encoder, 'reset_parameters'):
                self.structural_encoder.reset_parameters()
            if self.stand_in is not None:
                self.stand_in.reset_parameters()
        self._cache = {} if self._cache is not None else None

    def add_entities(self, features: Mapping[str, Tensor],
                     masks: Optional[Mapping[str, Tensor]] = None,
                     names: Optional[Sequence[str]] = None) -> Tensor:
        r"""Appends entities that have modality features but no training
        triple (no retraining): their structure is missing, so their joint
        embedding is ReDAF's fusion of their projected features, and they
        are scored and ranked like every other entity. Existing entities'
        scores do not change. Their features, masks and names are kept in
        :meth:`state_dict` (:meth:`load_state_dict` restores them).

        Args:
            features (dict[str, torch.Tensor]): Modality to ``[k, d_m]`` (or
                ``[d_m]`` for one entity) raw features; modalities left out
                are missing for the new entities.
            masks (dict[str, torch.Tensor], optional): Modality to ``[k]``
                presence; default: non-zero rows.
            names (list[str], optional): Names of the new entities.

        Returns:
            ``[k]`` ids of the new entities (``N, ..., N + k - 1``).
        """
        return append_entities(self, features, masks, names)

    def load_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = True,
                        assign: bool = False):
        """:meth:`torch.nn.Module.load_state_dict`, after re-adding the
        entities added to the saved model (:meth:`add_entities`)."""
        restore_added_entities(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------ attributes
    @property
    def modality_names(self) -> List[str]:
        """``['structure', *feature_modalities]``: the column order of
        modality embeddings and weights."""
        return [STRUCTURE, *self.feature_modalities]

    @property
    def device(self) -> torch.device:
        return self.entity_emb.weight.device

    def feature(self, modality: str) -> Tuple[Tensor, Tensor]:
        """The frozen ``(x [N, d_m], mask [N])`` of a feature modality."""
        return getattr(self, f'x_{modality}'), getattr(self, f'mask_{modality}')

    def _idx(self, index: Tensor) -> Tensor:
        return torch.as_tensor(index, device=self.device).long()

    # ------------------------------------------------------------ embeddings
    def relation_embedding(self, rel_type: Tensor) -> Tensor:
        """``[*, Dr]`` relation embeddings (scaled phases for RotatE)."""
        return self.rel_emb(self._idx(rel_type))

    def _feature_source(self, modality: str, entity_index: Optional[Tensor]
                        ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """``(x, mask, rows)``: a feature matrix, the presence mask of the
        requested entities and their rows in ``x`` (``None`` = all rows).
        Inside :meth:`subgraph` with fetched feature rows those are read
        (under ``missing='random'`` the model's fixed random rows are kept)."""
        x, mask = self.feature(modality)
        sub = self._subgraph
        if (entity_index is not None and sub is not None and modality in sub.x_dict
                and self.missing != 'random'):
            rows = sub.to_local(entity_index)
            return sub.x_dict[modality].to(x.dtype), sub.mask_dict[modality][rows], rows
        return x, (mask if entity_index is None else mask[entity_index]), entity_index

    def _feature_columns(self, entity_index: Optional[Tensor], num: int,
                         like: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        """Projected embeddings ``[U, De]`` and presence masks ``[U]`` of every
        feature modality (missing rows exactly zero under ``'mask'``)."""
        cols, present = [], []
        for m in self.feature_modalities:
            x, mask, index = self._feature_source(m, entity_index)
            if self.missing == 'mask':
                rows = mask.nonzero().view(-1)
                src = rows if index is None else index[rows]
                e = like.new_zeros(num, self.entity_dim).index_copy(
                    0, rows, self.encoders.encode(m, x[src]).to(like.dtype))
                present.append(mask)
            else:
                e = self.encoders.encode(m, x if index is None else x[index]).to(like.dtype)
                present.append(torch.ones_like(mask))
            cols.append(e)
        return cols, present

    def _encode(self, n_id: Optional[Tensor], edge_index: Tensor, edge_type: Tensor) -> Tensor:
        """The structural encoder over a graph of the nodes ``n_id`` (``None``
        = all entities), from the entity table (plus the mean projected
        modality embedding under ``encoder_input='structure+modalities'``)."""
        x = self.entity_emb.weight if n_id is None else self.entity_emb(n_id)
        if self.encoder_input == 'structure+modalities' and self.feature_modalities:
            cols, present = self._feature_columns(n_id, x.size(0), x)
            weight = torch.stack(present, 1).to(x.dtype)
            x = x + (torch.stack(cols, 1) * weight.unsqueeze(-1)).sum(1) \
                / weight.sum(1, keepdim=True).clamp(min=1)
        return self.structural_encoder(x, edge_index, edge_type)

    def structural_embeddings(self, entity_index: Optional[Tensor] = None) -> Tensor:
        r"""``[U, De]`` structural embeddings :math:`\mathbf{e}_s` of some
        entities (``None`` = all): table rows, or the structural encoder's
        output over the active :meth:`subgraph` (computed once per context)
        or else over the whole training graph."""
        if self.structural_encoder is None:
            return self.entity_emb.weight if entity_index is None else self.entity_emb(entity_index)
        sub = self._subgraph
        if sub is None or entity_index is None:
            out = self._encode(None, self.graph_edge_index, self.graph_edge_type)
            return out if entity_index is None else out[entity_index]
        if sub.structure is None:
            sub.structure = self._encode(sub.n_id, sub.edge_index, sub.edge_type)
        return sub.structure[sub.to_local(entity_index)]

    @contextmanager
    def subgraph(self, n_id: Tensor, edge_index: Tensor, edge_type: Tensor,
                 x_dict: Optional[Mapping[str, Tensor]] = None,
                 mask_dict: Optional[Mapping[str, Tensor]] = None) -> Iterator['NativE']:
        r"""Context in which the structural encoder runs over a (sampled)
        subgraph instead of the whole training graph, once, the first time
        an embedding is asked for; every scoring call inside must only
        touch entities of ``n_id``.

        Args:
            n_id (torch.Tensor): ``[n]`` global entity ids of the nodes.
            edge_index (torch.Tensor): ``[2, E]`` local edges (rows of
                ``n_id``), inverse edges included.
            edge_type (torch.Tensor): ``[E]`` types in :math:`[0, 2R)`.
            x_dict, mask_dict (dict, optional): Feature rows ``[n, d_m]``
                and masks ``[n]`` of ``n_id`` per modality (e.g. fetched from
                a feature store); default: the model's own buffers.
        """
        dev = self.device
        previous, self._subgraph = self._subgraph, _Subgraph(
            self._idx(n_id).view(-1), self._idx(edge_index), self._idx(edge_type),
            self.num_entities,
            {m: torch.as_tensor(x).to(dev) for m, x in (x_dict or {}).items()},
            {m: torch.as_tensor(k).to(dev).bool() for m, k in (mask_dict or {}).items()})
        try:
            yield self
        finally:
            self._subgraph = previous

    def modality_embeddings(self, entity_index: Optional[Tensor] = None
                            ) -> Tuple[Tensor, Tensor]:
        r"""Modality embeddings of some entities.

        Args:
            entity_index (torch.Tensor, optional): ``[U]`` entity ids
                (``None`` = all :math:`N` entities, without copying features).

        Returns:
            ``(emb [U, |M|, De], mask [U, |M|])`` with columns in
            :attr:`modality_names` order (structure first). Under
            ``missing='mask'`` only present rows are projected and missing
            ones are exactly zero; under ``'random'``/``'zero'`` the mask is
            all ``True``.
        """
        if entity_index is not None:
            entity_index = self._idx(entity_index).view(-1)
        s = self.structural_embeddings(entity_index)
        cols, present = self._feature_columns(entity_index, s.size(0), s)
        has_structure = self._structure_present(entity_index, present, s)
        emb, mask = torch.stack([s, *cols], dim=1), torch.stack([has_structure, *present], dim=1)
        return self._stand_in_structure(entity_index, emb, mask)

    def _stand_in_structure(self, entity_index: Optional[Tensor], emb: Tensor,
                            mask: Tensor) -> Tuple[Tensor, Tensor]:
        """With a fitted :attr:`stand_in`: the generated structure, present,
        for the entities without training triples that have a feature."""
        if self.stand_in is None or not bool(self.stand_in.fitted):
            return emb, mask
        without = ~self.mask_structure
        without = without if entity_index is None else without[entity_index]
        rows = (without & mask[:, 1:].any(1)).nonzero().view(-1)
        if rows.numel() == 0:
            return emb, mask
        structure = self.stand_in(emb[rows, 1:], mask[rows, 1:]).to(emb.dtype)
        emb, mask = emb.clone(), mask.clone()
        emb[rows, 0], mask[rows, 0] = structure, True
        return emb, mask

    def _embed_unique(self, *indices: Tensor) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """Modality embeddings of the unique entities of ``indices`` and, per
        index tensor, its rows into them (same shape)."""
        indices = [self._idx(i) for i in indices]
        flat = torch.cat([i.reshape(-1) for i in indices])
        unique, inverse = torch.unique(flat, return_inverse=True)
        emb, mask = self.modality_embeddings(unique)
        parts = inverse.split([i.numel() for i in indices])
        return emb, mask, [p.view(i.shape) for p, i in zip(parts, indices)]

    def _fuse(self, emb: Tensor, mask: Tensor, rel_type: Tensor,
              index: Optional[Tensor] = None, logits: Optional[Tensor] = None) -> Tensor:
        if self.fusion is None:  # structure only: the joint embedding is e_s
            return emb[:, 0] if index is None else emb[index, 0]
        return self.fusion(emb, mask, rel_type, index, logits)[0]

    def _fuse_rows(self, emb: Tensor, mask: Tensor,
                   pairs: Sequence[Tuple[Tensor, Tensor]]) -> List[Tensor]:
        """Fuses several ``(row_index, rel_type)`` groups in one ReDAF call."""
        index = torch.cat([i.reshape(-1) for i, _ in pairs])
        rel = torch.cat([self._idx(r).reshape(-1).expand(i.numel()) for i, r in pairs])
        out = self._fuse(emb, mask, rel, index).split([i.numel() for i, _ in pairs])
        return [o.view(*i.shape, -1) for o, (i, _) in zip(out, pairs)]

    def joint_embeddings(self, entity_index: Tensor, rel_type: Union[Tensor, int]) -> Tensor:
        r"""``[B, De]`` joint embeddings
        :math:`\mathbf{e}_{\mathrm{joint}}(e_b, r_b)`; ``rel_type`` is ``[B]``
        or a single relation for all rows."""
        emb, mask, (inv,) = self._embed_unique(entity_index)
        return self._fuse(emb, mask, self._idx(rel_type), inv)

    def modality_weights(self, entity_index: Tensor, rel_type: Union[Tensor, int]) -> Tensor:
        r"""``[B, |M|]`` ReDAF weights :math:`w_m` (columns as
        :attr:`modality_names`; a structure-only model gives ones)."""
        emb, mask, (inv,) = self._embed_unique(entity_index)
        if self.fusion is None:
            return emb.new_ones(inv.numel(), 1)
        return self.fusion(emb, mask, self._idx(rel_type), inv)[1]

    # --------------------------------------------------------------- scoring
    def score_embeddings(self, h_joint: Tensor, rel_type: Tensor, t_joint: Tensor) -> Tensor:
        """Scores given (e.g. generated or interpolated) joint embeddings."""
        return self.scorer(h_joint, self.relation_embedding(rel_type), t_joint)

    def forward(self, head_index: Tensor, rel_type: Tensor,
                tail_index: Optional[Tensor] = None) -> Tensor:
        r"""``[B]`` scores :math:`S(h, r, t)` of ``(head_index, rel_type,
        tail_index)`` or of ``(edge_index [2, B], edge_type [B])``."""
        h, r, t = unpack_triples(head_index, rel_type, tail_index)
        r = self._idx(r)
        emb, mask, (ih, it) = self._embed_unique(h, t)
        hj, tj = self._fuse_rows(emb, mask, [(ih, r), (it, r)])
        return self.scorer(hj, self.relation_embedding(r), tj)

    def score_negatives(self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor,
                        neg_index: Optional[Tensor] = None,
                        corrupt_head: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        r"""Scores positives and their corrupted negatives, embedding each
        unique entity of the whole batch once.

        Call as ``(head_index [B], rel_type [B], tail_index [B], neg_index
        [B, K], corrupt_head)`` or ``(edge_index [2, B], edge_type [B],
        neg_index, corrupt_head)``. ``corrupt_head`` (``[B]`` or ``[B, K]``
        bool) says whether a negative replaces the head (else the tail).

        Returns:
            ``(pos [B], neg [B, K])``.
        """
        if torch.as_tensor(head_index).dim() == 2:  # edge-index form: shift the arguments
            (h, r, t), neg_index, corrupt_head = (unpack_triples(head_index, rel_type),
                                                  tail_index, neg_index)
        else:
            h, r, t = head_index, rel_type, tail_index
        if neg_index is None or corrupt_head is None:
            raise ValueError("score_negatives needs neg_index and corrupt_head")
        r, neg_index = self._idx(r), self._idx(neg_index)
        batch, num_neg = neg_index.shape
        if self.fusion is None:  # structure only: rows straight from the table or encoder
            h, t = self._idx(h), self._idx(t)
            rows = self.structural_embeddings(torch.cat([h, t, neg_index.reshape(-1)]))
            hj, tj, nj = rows.split([batch, batch, batch * num_neg])
            nj = nj.view(batch, num_neg, -1)
        else:
            emb, mask, (ih, it, ineg) = self._embed_unique(h, t, neg_index)
            hj, tj, nj = self._fuse_rows(
                emb, mask, [(ih, r), (it, r), (ineg, r.view(-1, 1).expand(batch, num_neg))])
        rel = self.relation_embedding(r)
        flip = torch.as_tensor(corrupt_head, device=self.device).bool()
        return self.scorer(hj, rel, tj), self.scorer.score_corrupted(hj, rel, tj, nj, flip)

    def structural_l2(self, head_index: Tensor, rel_type: Tensor,
                      tail_index: Optional[Tensor] = None) -> Tensor:
        r"""L2 regulariser over structural embeddings only,
        :math:`(\overline{\mathbf{h}_s^2} + \overline{\mathbf{t}_s^2} +
        \overline{\mathbf{r}^2}) / 3`."""
        h, r, t = unpack_triples(head_index, rel_type, tail_index)
        # per-entity means of squares, then gathered: no [rows, De] copies
        sq = self.entity_emb.weight.pow(2).mean(dim=1)
        return (sq[self._idx(h)].mean() + sq[self._idx(t)].mean()
                + self.relation_embedding(r).pow(2).mean()) / 3

    # ------------------------------------------------------------ 1-vs-all
    @contextmanager
    def cached_entities(self) -> Iterator['NativE']:
        r"""Context for evaluation: the modality embeddings of all entities
        are computed once (without gradient) and reused by every
        :meth:`score_tails` / :meth:`score_heads` call inside, as are the
        fused candidates of the last relation. Leave the context (or do not
        use it) whenever parameters change."""
        previous, self._cache = self._cache, {}
        try:
            yield self
        finally:
            self._cache = previous

    def _all_entities(self) -> Tuple[Tensor, Tensor]:
        if self._cache is None:
            return self.modality_embeddings(None)
        if 'all' not in self._cache:
            with torch.no_grad():
                self._cache['all'] = self.modality_embeddings(None)
        return self._cache['all']

    def _all_logits(self, emb: Tensor) -> Optional[Tensor]:
        """ReDAF's attention logits of all entities (relation-independent),
        kept while :meth:`cached_entities` is active."""
        if self._cache is None or getattr(self.fusion, 'u', None) is None:
            return None
        if 'logits' not in self._cache:
            with torch.no_grad():
                self._cache['logits'] = self.fusion.logits(emb)
        return self._cache['logits']

    def _candidates(self, rel: int, emb: Tensor, mask: Tensor,
                    logits: Optional[Tensor] = None) -> Tensor:
        """All ``N`` entities fused under relation ``rel`` (one ReDAF call)."""
        if self._cache is None:
            return self._fuse(emb, mask, self._idx(rel))
        if self._cache.get('rel') != rel:
            with torch.no_grad():
                self._cache['cand'] = self._fuse(emb, mask, self._idx(rel), logits=logits)
            self._cache['rel'] = rel
        return self._cache['cand']

    def _one_vs_all(self, query_index: Tensor, rel_type: Tensor, tails: bool,
                    chunk_size: Optional[int]) -> Tensor:
        query_index, rel_type = self._idx(query_index).view(-1), self._idx(rel_type).view(-1)
        rel_type = rel_type.expand(query_index.numel()) if rel_type.numel() == 1 else rel_type
        emb, mask = self._all_entities()
        logits = self._all_logits(emb)
        query = self._fuse(emb, mask, rel_type, query_index, logits)  # ids index emb rows
        rel = self.relation_embedding(rel_type)
        scores, order = [], []
        for r in torch.unique(rel_type).tolist():  # each relation's candidates fused once
            rows = (rel_type == r).nonzero().view(-1)
            cand = self._candidates(r, emb, mask, logits)
            scores.append(self.scorer.score_tails(query[rows], rel[rows], cand, chunk_size)
                          if tails else
                          self.scorer.score_heads(rel[rows], query[rows], cand, chunk_size))
            order.append(rows)
        if len(scores) == 1:
            return scores[0]
        return torch.cat(scores)[torch.argsort(torch.cat(order))]

    def score_tails(self, head_index: Tensor, rel_type: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        r"""``[B, N]`` scores of every entity as the tail of
        :math:`(h_b, r_b, ?)`. Per distinct relation, all entities are fused
        under it once; candidates are scored in memory-bounded chunks
        (``chunk_size`` candidates, ``None`` = automatic)."""
        return self._one_vs_all(head_index, rel_type, True, chunk_size)

    def score_heads(self, rel_type: Tensor, tail_index: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        r"""``[B, N]`` scores of every entity as the head of
        :math:`(?, r_b, t_b)`; see :meth:`score_tails`."""
        return self._one_vs_all(tail_index, rel_type, False, chunk_size)

    # ----------------------------------------------------------------- CoMAT
    def _fake_fuse(self, emb: Tensor, mask: Tensor, index: Tensor, rel_type: Tensor,
                   generator: torch.nn.Module, noise: Optional[Tensor] = None) -> Tensor:
        if self.fusion is None:
            raise ValueError("adversarial training needs at least one feature modality")
        rows, row_mask = emb[index], mask[index]
        fake = generator(rows, noise)  # [B, |M_feat|, De]
        fake_rows = torch.cat([rows[:, :1], fake.to(rows.dtype)], dim=1)
        return self.fusion(fake_rows, row_mask, rel_type)[0]

    def fake_joint_embeddings(self, entity_index: Tensor, rel_type: Union[Tensor, int],
                              generator: torch.nn.Module,
                              noise: Optional[Tensor] = None) -> Tensor:
        r"""``[B, De]`` joint embeddings that fuse the real structural
        embedding with the generator's fake modality embeddings (same mask,
        same ReDAF). The generator reads all of the entity's modality
        embeddings (not detached)."""
        entity_index = self._idx(entity_index).view(-1)
        emb, mask, (inv,) = self._embed_unique(entity_index)
        rel = self._idx(rel_type).view(-1).expand(entity_index.numel())
        return self._fake_fuse(emb, mask, inv, rel, generator, noise)

    def adversarial_embeddings(self, head_index: Tensor, rel_type: Tensor,
                               tail_index: Optional[Tensor], generator: torch.nn.Module
                               ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""``(h, t, h_fake, t_fake)`` joint embeddings ``[B, De]`` of a batch,
        real and generated (fresh noise), from one embedding of its unique
        entities."""
        h, r, t = unpack_triples(head_index, rel_type, tail_index)
        r = self._idx(r).view(-1)
        emb, mask, (ih, it) = self._embed_unique(h, t)
        hj, tj = self._fuse_rows(emb, mask, [(ih, r), (it, r)])
        return (hj, tj, self._fake_fuse(emb, mask, ih, r, generator),
                self._fake_fuse(emb, mask, it, r, generator))

    def __repr__(self) -> str:
        scorer = type(self.scorer).__name__
        fusion = 'none' if self.fusion is None else self.fusion.fusion
        encoder = ('table' if self.structural_encoder is None
                   else type(self.structural_encoder).__name__)
        return (f'{self.__class__.__name__}({self.num_entities}, '
                f'num_relations={self.num_relations}, hidden_channels={self.hidden_channels}, '
                f'modalities={self.feature_modalities}, scorer={scorer}, '
                f'margin={self.margin}, missing={self.missing!r}, fusion={fusion!r}, '
                f'structure={encoder}, structure_mask={self.masks_structure}, '
                f'structure_stand_in={self.stand_in is not None})')
