r"""The structural modality of a :class:`~native_pyg.nn.NativE`: where an
entity's structural embedding :math:`\mathbf{e}_s` comes from and whether
it takes part.

:math:`\mathbf{e}_s` is the entity's row of the structural table, or the
structural encoder's output over the training graph, whose input
(:meth:`StructuralModality.encoder_input`) is the table plus, with
``encoder_input='structure+modalities'``, the mean projected modality
embedding. Two contexts change what a call sees:
:meth:`StructuralModality.subgraph` runs the encoder over a step's
(sampled) subgraph instead of the whole training graph, and
:meth:`StructuralModality.hidden_structure` hides the structure of some
entities (structure dropout). Under ``missing='mask'`` with
``structure_mask``, an entity without training triples (or with its
structure hidden) has no structure column, unless it has nothing else."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List, Optional

import torch
from torch import Tensor

from native_pyg.loader.step_subgraph import StepSubgraph
from native_pyg.nn.embedding_cache import cached_value
from native_pyg.nn.projections import EntityRows


class StructuralModality:
    """The structural embeddings and their contexts, part of a model that
    holds the structural table ``entity_emb``, the ``structural_encoder``
    (or ``None``), the ``projections``, the entity ``inputs``, the
    ``missing`` option, ``structure_mask``, its ``feature_modalities`` and the
    embedding cache ``_cache``. It keeps ``self._subgraph`` and
    ``self._hidden`` (``None`` outside the contexts)."""

    _subgraph: Optional[StepSubgraph] = None
    _hidden: Optional[Tensor] = None  # structure hidden for this step (dropout)
    _encoder_input: str = 'structure'

    @property
    def masks_structure(self) -> bool:
        """Whether structure takes part as a maskable modality."""
        return self.structure_mask and self.missing.masked and bool(self.feature_modalities)

    @property
    def encoder_reads_features(self) -> bool:
        """Whether the structural encoder's input includes the entities'
        projected modality embeddings (``encoder_input='structure+modalities'``
        with feature modalities), so a step fetches every node's rows."""
        return self._encoder_input == 'structure+modalities' and bool(self.feature_modalities)

    def encoder_input(self, entity_index: Optional[Tensor] = None) -> Tensor:
        r"""``[U, De]`` the structural encoder's input rows of some entities
        (``None``: all, the table itself where it is the input): their table
        rows, plus under :attr:`encoder_reads_features` the mean of their
        present projected modality embeddings (read from the active
        :meth:`subgraph`'s rows, else from ``inputs``)."""
        x = self.entity_emb(entity_index)
        if self.encoder_reads_features:
            x = x + self.projections.mean_embedding(self._source(), entity_index, x,
                                                    masked=self.missing.masked)
        return x

    def _encode(self, sub: Optional[StepSubgraph] = None) -> Tensor:
        """The structural encoder over ``sub`` (``None``: the training graph)."""
        if sub is None:
            return self.structural_encoder(self.encoder_input(None), *self.inputs.graph())
        return sub.encode(self.structural_encoder, self.encoder_input(sub.n_id))

    def structural_embeddings(self, entity_index: Optional[Tensor] = None) -> Tensor:
        r"""``[U, De]`` structural embeddings :math:`\mathbf{e}_s` of some
        entities (``None`` = all; refused inside :meth:`subgraph`): table
        rows, or the structural encoder's output over the active
        :meth:`subgraph` (computed once per context) or else over the whole
        training graph."""
        if entity_index is None:
            self._refuse_all_in_subgraph('structural_embeddings')
        if self.structural_encoder is None:
            return self.entity_emb(entity_index)
        sub = self._subgraph
        if sub is None:  # the whole graph, once per cached_entities context
            out = cached_value(self._cache, 'structure', self.inputs.version, self._encode)
            if entity_index is None:  # rows kept on disk (LayerRows): all of them, read
                return out if torch.is_tensor(out) else out[None]
            return out[entity_index]
        if sub.structure is None:
            self._encode(sub)
        return sub.structure_of(entity_index)

    def _structure_present(self, entity_index: Optional[Tensor], present: List[Tensor],
                           like: Tensor) -> Tensor:
        """``[U]`` presence of the structure column (all ``True`` unless
        structure is masked); never removes an entity's last modality."""
        ones = torch.ones(like.size(0), dtype=torch.bool, device=like.device)
        if not self.masks_structure or not present:
            return ones
        has = self.inputs.has_structure()
        if self._hidden is not None:
            has = has & ~self._hidden
        has = has if entity_index is None else has[entity_index]
        return has | ~torch.stack(present, 1).any(1)

    @contextmanager
    def subgraph(self, n_id: Tensor, edge_index: Tensor, edge_type: Tensor,
                 **kwargs) -> Iterator['StructuralModality']:
        r"""Context in which the structural encoder runs over a (sampled)
        subgraph instead of the whole training graph, once, the first time
        an embedding is asked for; every scoring call inside must only
        touch entities of ``n_id`` (calls over all entities, such as
        ``score_tails``, are refused). The arguments are those of
        :class:`StepSubgraph`: global node ids ``n_id [n]``, local
        ``edge_index [2, E]`` with inverse edges, ``edge_type [E]`` in
        :math:`[0, 2R)`, and optional fetched feature rows ``x_dict``
        ``{m: [n, d_m]}``, masks ``mask_dict`` ``{m: [n]}`` and per-hop
        sizes ``num_sampled_nodes`` / ``num_sampled_edges``.
        """
        previous, self._subgraph = self._subgraph, StepSubgraph(
            self.inputs, n_id, edge_index, edge_type, **kwargs)
        try:
            yield self
        finally:
            self._subgraph = previous

    @contextmanager
    def hidden_structure(self, hidden: Tensor) -> Iterator['StructuralModality']:
        r"""Context in which the structure of the entities where ``hidden``
        (``[N]`` bool) is missing, e.g. structure dropout in a training step;
        entities without any feature keep their structure."""
        previous, self._hidden = self._hidden, torch.as_tensor(hidden, device=self.device).bool()
        try:
            yield self
        finally:
            self._hidden = previous

    def _source(self) -> EntityRows:
        """Where raw feature rows are read: the active subgraph's fetched rows
        (falling back to ``inputs``), else ``inputs``."""
        return self._subgraph if self._subgraph is not None else self.inputs

    def _refuse_all_in_subgraph(self, what: str) -> None:
        if self._subgraph is not None:  # the full graph would hold the batch's positives
            raise ValueError(f"{what} over all entities inside model.subgraph(...): pass "
                             f"entity ids of the subgraph, or leave the context first")
