r"""The NativE model: a composition of a structural modality (a table, or a
relational GNN over it; :mod:`~native_pyg.nn.structural_modality`), modality
projections, ReDAF and a score function, over PyG-style index batches; what
entities bring in is read from
:class:`~native_pyg.nn.entity_inputs.EntityInputs`. Its public surface,
what other packages may use, is listed in ``docs/architecture.md``."""
from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from native_pyg.data.relations import unpack_triples
from native_pyg.nn.candidates import score_one_vs_all
from native_pyg.nn.embedding_cache import entity_rows
from native_pyg.nn.entity_addition import EntityAddition
from native_pyg.nn.entity_caches import EntityCaches
from native_pyg.nn.entity_inputs import EntityInputs
from native_pyg.nn.missing import Missing
from native_pyg.nn.projections import STRUCTURE, ModalityProjections, check_modality_names
from native_pyg.nn.redaf import ReDAF, check_fusion_options
from native_pyg.nn.scorers import SCORERS, KGScorer
from native_pyg.nn.structural_modality import StructuralModality
from native_pyg.nn.structure_stand_in import StructureStandIn
from native_pyg.nn.structural_encoder import make_structural_encoder
from native_pyg.nn.structural_table import StructuralTable, make_table


class NativE(EntityAddition, EntityCaches, StructuralModality, torch.nn.Module):
    r"""NativE: multi-modal KG completion "in the wild", any number and
    names of modalities, any of them missing for any entity.

    Every entity :math:`e` has a structural embedding :math:`\mathbf{e}_s`
    (a row of the :class:`StructuralTable` :attr:`entity_emb`, or with
    ``encoder`` the output of a relational GNN over the training graph whose
    input is that table, :meth:`encoder_input`) and, per feature
    modality :math:`m` it has, a
    projection :math:`\mathbf{e}_m = P_m(\mathbf{x}_m)` of its frozen raw
    feature (:class:`ModalityProjections`). In the context of relation
    :math:`r` they are fused by :class:`ReDAF` into
    :math:`\mathbf{e}_{\mathrm{joint}}(e, r)` and scored,

    .. math::
        S(h, r, t) = f\big(\mathbf{e}_{\mathrm{joint}}(h, r),\ \mathbf{r},\
        \mathbf{e}_{\mathrm{joint}}(t, r)\big),

    with :math:`f` a :class:`KGScorer` (RotatE by default:
    :math:`\gamma - \| \mathbf{h} \circ \mathbf{r} - \mathbf{t} \|`).
    Without feature modalities this is the plain score function on
    structural embeddings.

    What an entity brings in besides its learned parameters (raw features
    and masks, the structure mask, the training graph, entities added after
    training) is owned by :attr:`inputs` (:class:`EntityInputs`), which the
    model asks for rows by entity id. Every scoring entry point embeds each
    *unique* entity of its batch once and gathers.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R`.
        hidden_channels (int): Embedding dimension :math:`d` (RotatE and
            ComplEx entities hold :math:`2d` reals).
        features (dict[str, torch.Tensor], optional): Modality name to raw
            features ``[N, d_m]`` (row ``i`` = entity ``i``).
            (default: :obj:`None`, structure only)
        masks (dict[str, torch.Tensor], optional): Modality name to a
            ``[N]`` bool presence mask. (default: non-zero rows)
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
            (default: :obj:`None`)
        encoder_input (str, optional): The encoder's input: ``'structure'``
            (the entity table) or ``'structure+modalities'`` (the table plus
            the mean of the entity's projected modality embeddings, so
            messages carry modality information). (default: ``'structure'``)
        edge_index (torch.Tensor, optional): ``[2, E]`` training edges
            (head, tail) the encoder runs over outside :meth:`subgraph`.
            (default: :obj:`None`, no graph)
        edge_type (torch.Tensor, optional): ``[E]`` their relations.
            (default: :obj:`None`)
        structure_mask (bool, optional): Treat structure as a modality that
            can be missing (under ``missing='mask'`` with feature
            modalities): an entity in no edge of the training graph has
            structure weight exactly :math:`0`, its features alone place it;
            one with neither structure nor feature keeps its (untrained)
            row. :obj:`False` is the paper's behaviour. (default: :obj:`True`)
        structure_stand_in (bool, optional): With ``structure_mask``, add a
            :class:`StructureStandIn` (:attr:`stand_in`), which once fitted
            gives entities without training triples a generated structure.
            (default: :obj:`False`)
        inputs (EntityInputs, optional): What entities bring in, built
            elsewhere (e.g. :class:`~native_pyg.nn.stored_inputs.StoredEntityInputs`
            over a feature store), instead of ``features`` and ``masks``.
            (default: :obj:`None`)
        sparse (bool, optional): Sparse entity-table gradients (a
            :class:`~native_pyg.nn.structural_table.RowSparseTable`, for
            row-wise optimisers, see ``training.table_optimizer``).
            (default: :obj:`False`)
        table (StructuralTable, optional): The entity table, built elsewhere
            (e.g. sharded over devices), :math:`N` rows of the scorer's entity
            size, its rows set by the scorer's initialisation; instead of
            ``sparse``. (default: :obj:`None`)
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
        edge_index: Optional[Tensor] = None, edge_type: Optional[Tensor] = None,
        structure_mask: bool = True, structure_stand_in: bool = False,
        inputs: Optional[EntityInputs] = None,
        sparse: bool = False,
        table: Optional[StructuralTable] = None,
    ):
        super().__init__()
        if encoder_input not in ('structure', 'structure+modalities'):
            raise ValueError(f"encoder_input must be 'structure' or 'structure+modalities', "
                             f"got {encoder_input!r}")
        check_fusion_options(fusion, missing)  # also without feature modalities (no ReDAF)
        self.num_relations = int(num_relations)
        self.hidden_channels = int(hidden_channels)
        self.epsilon = float(epsilon)
        self.missing = Missing.of(missing)
        self.seed = int(seed)
        if isinstance(scorer, str):
            if scorer.lower() not in SCORERS:
                raise ValueError(f"unknown scorer {scorer!r}; expected one of {sorted(SCORERS)}")
            scorer = SCORERS[scorer.lower()](hidden_channels, margin=margin, epsilon=epsilon)
        self.scorer = scorer
        self.entity_dim = scorer.entity_dim
        # a given scorer instance decides the margin used by every loss
        self.margin = float(getattr(scorer, 'margin', margin))

        features = dict(features or {})
        if inputs is not None:  # e.g. rows kept in a feature store
            if features or masks:
                raise ValueError("give features (and masks) or inputs, not both")
            in_channels = inputs.check_fits(num_entities, num_relations, missing)
        else:
            in_channels = {m: torch.as_tensor(x).size(-1) for m, x in features.items()}
        self.feature_modalities: List[str] = check_modality_names(in_channels)
        self.projections: Optional[ModalityProjections] = None
        self.fusion: Optional[ReDAF] = None
        # construction draws default initialisations; keep them off the global RNG
        with torch.random.fork_rng(devices=[]):
            self.entity_emb = make_table(int(num_entities), scorer.entity_dim, sparse) \
                if table is None else table.checked(int(num_entities), scorer.entity_dim)
            self.rel_emb = torch.nn.Embedding(self.num_relations, scorer.relation_dim)
            if self.feature_modalities:
                self.projections = ModalityProjections(in_channels, self.entity_dim)
                self.fusion = ReDAF(self.entity_dim, self.num_relations,
                                    relation_temperature=relation_temperature, fusion=fusion,
                                    missing=missing,
                                    theta_range=(self.margin + self.epsilon) / self.entity_dim)
            encoder = make_structural_encoder(encoder, self.entity_dim, self.num_relations,
                                              encoder_kwargs)
        self.structural_encoder: Optional[torch.nn.Module] = encoder
        self._encoder_input = encoder_input
        self.structure_mask = bool(structure_mask)
        self.stand_in: Optional[StructureStandIn] = None
        if structure_stand_in:
            if not self.masks_structure:
                raise ValueError("structure_stand_in needs feature modalities, "
                                 "structure_mask=True and missing='mask'")
            with torch.random.fork_rng(devices=[]):
                self.stand_in = StructureStandIn(self.feature_modalities, self.entity_dim)
        if inputs is None:
            inputs = EntityInputs(num_entities, self.num_relations, in_channels, missing, seed)
            inputs.set_features(features, masks)
            edge_index = torch.empty(2, 0, dtype=torch.long) if edge_index is None else edge_index
        self.inputs = inputs
        if edge_index is not None:  # given inputs keep their graph unless one is given
            self.inputs.set_graph(edge_index,
                                  edge_index.new_empty(0) if edge_type is None else edge_type)
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
                ``[]`` = structure only. (default: :obj:`None`, all of the
                graph's)
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

    def reset_parameters(self):
        r"""Resets all learnable parameters (deterministically, from ``seed``)."""
        devices = sorted({p.device.index or 0 for p in self.parameters() if p.is_cuda})
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            self.entity_emb.initialize_(self.scorer.init_entity_)
            self.scorer.init_relation_(self.rel_emb.weight.data)
            if self.projections is not None:
                self.projections.reset_parameters()
            if self.fusion is not None:
                self.fusion.reset_parameters()
            if hasattr(self.structural_encoder, 'reset_parameters'):  # any user module
                self.structural_encoder.reset_parameters()
            if self.stand_in is not None:
                self.stand_in.reset_parameters()
        if self._cache is not None:  # parameters changed
            self._cache.clear()

    # ------------------------------------------------------------ attributes
    @property
    def num_entities(self) -> int:
        """Number of entities :math:`N`, added entities included."""
        return self.inputs.num_entities

    @property
    def modality_names(self) -> List[str]:
        """``['structure', *feature_modalities]``: the column order of
        modality embeddings and weights."""
        return [STRUCTURE, *self.feature_modalities]

    @property
    def device(self) -> torch.device:
        return self.rel_emb.weight.device

    @property
    def uses_relation_guided_fusion(self) -> bool:
        """Whether modalities are fused by ReDAF's attention (``fusion='redaf'``
        with feature modalities), whose logits :meth:`attention_logits` gives."""
        return self.fusion is not None and self.fusion.attends

    @property
    def fusion_name(self) -> str:
        """``'redaf'``, ``'mean'``, or ``'none'`` (structure only)."""
        return 'none' if self.fusion is None else self.fusion.fusion

    def feature(self, modality: str) -> Tuple[Tensor, Tensor]:
        """The frozen ``(x [N, d_m], mask [N])`` of a feature modality."""
        return self.inputs.rows(modality), self.inputs.mask(modality)

    def _idx(self, index: Tensor) -> Tensor:
        return torch.as_tensor(index, device=self.device).long()

    # ------------------------------------------------------------ embeddings
    def relation_embedding(self, rel_type: Tensor) -> Tensor:
        """``[*, Dr]`` relation embeddings (scaled phases for RotatE)."""
        return self.rel_emb(self._idx(rel_type))

    def modality_embeddings(self, entity_index: Optional[Tensor] = None
                            ) -> Tuple[Tensor, Tensor]:
        r"""Modality embeddings of some entities.

        Args:
            entity_index (torch.Tensor, optional): ``[U]`` entity ids.
                (default: :obj:`None`, all :math:`N` entities without
                copying features; refused inside :meth:`subgraph`)

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
        cols, present = ([], []) if self.projections is None else \
            self.projections.project_entities(self._source(), entity_index, s.size(0), s,
                                              masked=self.missing.masked)
        has_structure = self._structure_present(entity_index, present, s)
        emb, mask = torch.stack([s, *cols], dim=1), torch.stack([has_structure, *present], dim=1)
        if self.stand_in is None:
            return emb, mask
        return self.stand_in.complete(emb, mask, ~self.inputs.has_structure(entity_index))

    def embed_entities(self, *indices: Tensor) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """``(emb [U, |M|, De], mask [U, |M|], rows)``: the modality
        embeddings of the unique entities of ``indices`` (each embedded
        once) and, per index tensor, its rows into them (same shape)."""
        indices = [self._idx(i) for i in indices]
        flat = torch.cat([i.reshape(-1) for i in indices])
        unique, inverse = torch.unique(flat, return_inverse=True)
        emb, mask = entity_rows(self._cache, unique, self.modality_embeddings)
        parts = inverse.split([i.numel() for i in indices])
        return emb, mask, [p.view(i.shape) for p, i in zip(parts, indices)]

    def fuse(self, emb: Tensor, mask: Tensor, rel_type: Union[Tensor, int],
             index: Optional[Tensor] = None, logits: Optional[Tensor] = None) -> Tensor:
        r"""``[B, De]`` joint embeddings of modality embeddings ``(emb, mask)``
        (its rows ``index``, default all) in the context of ``rel_type``:
        ReDAF, or the structure column of a structure-only model.
        ``logits``: ReDAF's attention logits of ``emb``, if precomputed."""
        if self.fusion is None:  # structure only: the joint embedding is e_s
            return emb[:, 0] if index is None else emb[index, 0]
        return self.fusion(emb, mask, self._idx(rel_type), index, logits)[0]

    def attention_logits(self, emb: Tensor) -> Optional[Tensor]:
        r"""``[U, M]`` ReDAF's attention logits of modality embeddings ``emb``
        (independent of the relation: computed once, they may be passed to
        :meth:`fuse` and :meth:`fusion_weights` under every relation);
        ``None`` without :attr:`uses_relation_guided_fusion`."""
        return self.fusion.logits(emb) if self.uses_relation_guided_fusion else None

    def fusion_weights(self, emb: Tensor, mask: Tensor, rel_type: Union[Tensor, int],
                       logits: Optional[Tensor] = None) -> Tensor:
        """``[U, M]`` weights fusing every row of ``emb`` under one relation
        (:func:`~native_pyg.nn.redaf.weighted_sum` of them is :meth:`fuse`
        without gradient); the structure column alone without fusion."""
        if self.fusion is None:
            weights = emb.new_zeros(mask.shape)
            weights[:, 0] = 1
            return weights
        return self.fusion.dense_weights(emb, mask, self._idx(rel_type), logits)

    def fuse_rows(self, emb: Tensor, mask: Tensor,
                  pairs: Sequence[Tuple[Tensor, Tensor]]) -> List[Tensor]:
        """Fuses ``(row_index, rel_type)`` groups of rows of ``emb``, a ReDAF
        call each (one call's split output is concatenated again in backward);
        one ``[*row_index.shape, De]`` tensor per group."""
        return [self.fuse(emb, mask, self._idx(r).reshape(-1).expand(i.numel()),
                          i.reshape(-1)).view(*i.shape, -1) for i, r in pairs]

    def joint_embeddings(self, entity_index: Tensor, rel_type: Union[Tensor, int]) -> Tensor:
        r"""``[B, De]`` joint embeddings
        :math:`\mathbf{e}_{\mathrm{joint}}(e_b, r_b)`; ``rel_type`` is ``[B]``
        or a single relation for all rows."""
        emb, mask, (inv,) = self.embed_entities(entity_index)
        return self.fuse(emb, mask, rel_type, inv)

    def modality_weights(self, entity_index: Tensor, rel_type: Union[Tensor, int]) -> Tensor:
        r"""``[B, |M|]`` ReDAF weights :math:`w_m` (columns as
        :attr:`modality_names`; a structure-only model gives ones)."""
        emb, mask, (inv,) = self.embed_entities(entity_index)
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
        emb, mask, (ih, it) = self.embed_entities(h, t)
        hj, tj = self.fuse_rows(emb, mask, [(ih, r), (it, r)])
        return self.scorer(hj, self.relation_embedding(r), tj)

    def score_negatives(self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor,
                        neg_index: Optional[Tensor] = None, corrupt_head: Optional[Tensor] = None,
                        fuse_once: bool = False) -> Tuple[Tensor, Tensor]:
        r"""Scores positives and their corrupted negatives, embedding each
        unique entity of the whole batch once. Call as ``(head_index [B],
        rel_type [B], tail_index [B], neg_index [B, K], corrupt_head)`` or
        ``(edge_index [2, B], edge_type [B], neg_index, corrupt_head)``.
        ``corrupt_head`` (``[B]`` or ``[B, K]`` bool) says whether a negative
        replaces the head (else the tail). ``fuse_once``: fuse each distinct
        (negative, relation) pair once (shared negatives repeat them).
        Returns ``(pos [B], neg [B, K])``."""
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
            emb, mask, (ih, it, ineg) = self.embed_entities(h, t, neg_index)
            rn, inv = r.view(-1, 1).expand(batch, num_neg), None
            if fuse_once:
                pairs, inv = torch.unique(ineg * self.num_relations + rn, return_inverse=True)
                ineg, rn = pairs // self.num_relations, pairs % self.num_relations
            hj, tj, nj = self.fuse_rows(emb, mask, [(ih, r), (it, r), (ineg, rn)])
            nj = nj if inv is None else nj[inv]
        rel = self.relation_embedding(r)
        flip = torch.as_tensor(corrupt_head, device=self.device).bool()
        return self.scorer(hj, rel, tj), self.scorer.score_corrupted(hj, rel, tj, nj, flip)

    # ------------------------------------------------------------ 1-vs-all
    def score_tails(self, head_index: Tensor, rel_type: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        r"""``[B, N]`` scores of every entity as the tail of
        :math:`(h_b, r_b, ?)`. Per distinct relation, all entities are fused
        under it once; candidates are scored in memory-bounded chunks
        (``chunk_size`` candidates, ``None`` = automatic)."""
        self._refuse_all_in_subgraph('score_tails')
        return score_one_vs_all(self, head_index, rel_type, True, chunk_size, self._candidates)

    def score_heads(self, rel_type: Tensor, tail_index: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        r"""``[B, N]`` scores of every entity as the head of
        :math:`(?, r_b, t_b)`; see :meth:`score_tails`."""
        self._refuse_all_in_subgraph('score_heads')
        return score_one_vs_all(self, tail_index, rel_type, False, chunk_size, self._candidates)

    def __repr__(self) -> str:
        scorer = type(self.scorer).__name__
        encoder = ('table' if self.structural_encoder is None
                   else type(self.structural_encoder).__name__)
        return (f'{self.__class__.__name__}({self.num_entities}, '
                f'num_relations={self.num_relations}, hidden_channels={self.hidden_channels}, '
                f'modalities={self.feature_modalities}, scorer={scorer}, '
                f'margin={self.margin}, missing={self.missing!r}, fusion={self.fusion_name!r}, '
                f'structure={encoder}, structure_mask={self.masks_structure}, '
                f'structure_stand_in={self.stand_in is not None})')

