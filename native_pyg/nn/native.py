r"""The NativE model: structural embeddings, modality encoders, ReDAF and a
score function, over PyG-style index batches."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from native_pyg.nn.encoders import STRUCTURE, ModalityEncoders, check_modality_names
from native_pyg.nn.redaf import ReDAF, check_fusion_options
from native_pyg.nn.scorers import SCORERS, KGScorer


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


class NativE(torch.nn.Module):
    r"""NativE: multi-modal KG completion "in the wild", any number and
    names of modalities, any of them missing for any entity.

    Every entity :math:`e` has a learned structural embedding
    :math:`\mathbf{e}_s` and, per feature modality :math:`m` it has, a
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
    ):
        super().__init__()
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
        self._cache: Optional[Dict] = None
        self.set_features(features, masks)
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
        from native_pyg.data.schema import ENTITY, modalities as data_modalities
        names = data_modalities(data) if modalities is None else list(modalities)
        features = {m: data[m].x for m in names}
        masks = {m: data[m].mask for m in names}
        return cls(data[ENTITY].num_nodes, data.num_relations, hidden_channels,
                   features=features, masks=masks, **kwargs)

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
        self._cache = {} if self._cache is not None else None

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
        if entity_index is None:
            s = self.entity_emb.weight
        else:
            entity_index = self._idx(entity_index).view(-1)
            s = self.entity_emb(entity_index)
        num = s.size(0)
        cols, present = [s], [torch.ones(num, dtype=torch.bool, device=s.device)]
        for m in self.feature_modalities:
            x, mask = self.feature(m)
            if entity_index is not None:
                mask = mask[entity_index]
            if self.missing == 'mask':
                rows = mask.nonzero().view(-1)
                src = rows if entity_index is None else entity_index[rows]
                e = s.new_zeros(num, self.entity_dim).index_copy(
                    0, rows, self.encoders.encode(m, x[src]).to(s.dtype))
                present.append(mask)
            else:
                e = self.encoders.encode(m, x if entity_index is None else x[entity_index])
                e = e.to(s.dtype)
                present.append(torch.ones_like(mask))
            cols.append(e)
        return torch.stack(cols, dim=1), torch.stack(present, dim=1)

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
              index: Optional[Tensor] = None) -> Tensor:
        if self.fusion is None:  # structure only: the joint embedding is e_s
            return emb[:, 0] if index is None else emb[index, 0]
        return self.fusion(emb, mask, rel_type, index)[0]

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
        emb, mask, (ih, it, ineg) = self._embed_unique(h, t, neg_index)
        hj, tj, nj = self._fuse_rows(
            emb, mask, [(ih, r), (it, r), (ineg, r.view(-1, 1).expand(batch, num_neg))])
        rel = self.relation_embedding(r)
        pos = self.scorer(hj, rel, tj)
        flip = torch.as_tensor(corrupt_head, device=self.device).bool().view(batch, -1, 1)
        heads = torch.where(flip, nj, hj.unsqueeze(1))
        tails = torch.where(flip, tj.unsqueeze(1), nj)
        return pos, self.scorer(heads, rel.unsqueeze(1), tails)

    def structural_l2(self, head_index: Tensor, rel_type: Tensor,
                      tail_index: Optional[Tensor] = None) -> Tensor:
        r"""L2 regulariser over structural embeddings only,
        :math:`(\overline{\mathbf{h}_s^2} + \overline{\mathbf{t}_s^2} +
        \overline{\mathbf{r}^2}) / 3`."""
        h, r, t = unpack_triples(head_index, rel_type, tail_index)
        return (self.entity_emb(self._idx(h)).pow(2).mean()
                + self.entity_emb(self._idx(t)).pow(2).mean()
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

    def _candidates(self, rel: int, emb: Tensor, mask: Tensor) -> Tensor:
        """All ``N`` entities fused under relation ``rel`` (one ReDAF call)."""
        if self._cache is None:
            return self._fuse(emb, mask, self._idx(rel))
        if self._cache.get('rel') != rel:
            with torch.no_grad():
                self._cache['cand'] = self._fuse(emb, mask, self._idx(rel))
            self._cache['rel'] = rel
        return self._cache['cand']

    def _one_vs_all(self, query_index: Tensor, rel_type: Tensor, tails: bool,
                    chunk_size: Optional[int]) -> Tensor:
        query_index, rel_type = self._idx(query_index).view(-1), self._idx(rel_type).view(-1)
        rel_type = rel_type.expand(query_index.numel()) if rel_type.numel() == 1 else rel_type
        emb, mask = self._all_entities()
        query = self._fuse(emb, mask, rel_type, query_index)  # entity ids index emb rows
        rel = self.relation_embedding(rel_type)
        scores, order = [], []
        for r in torch.unique(rel_type).tolist():  # each relation's candidates fused once
            rows = (rel_type == r).nonzero().view(-1)
            cand = self._candidates(r, emb, mask)
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
        return (f'{self.__class__.__name__}({self.num_entities}, '
                f'num_relations={self.num_relations}, hidden_channels={self.hidden_channels}, '
                f'modalities={self.feature_modalities}, scorer={scorer}, '
                f'margin={self.margin}, missing={self.missing!r}, fusion={fusion!r})')
