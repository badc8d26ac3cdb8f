r"""A generated stand-in for the structural embedding of an entity that has
no training triple (an unseen entity, or one added after training)."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

from native_pyg.nn.projections import check_modality_names


class StructureStandIn(torch.nn.Module):
    r"""Generates a structural embedding from an entity's feature modality
    embeddings, in the form of CoMAT's generator (without noise: a stand-in
    must be the same at every call) with structure as the generated column:

    .. math::
        \hat{\mathbf{e}}_s = \mathbf{W}_2\, \mathrm{LeakyReLU}\big(
        \mathbf{W}_1 [\mathbf{e}_{m_1} \| \dots \| \mathbf{e}_{m_k} \|
        \mathbf{m}] + \mathbf{b}_1\big) + \mathbf{b}_2,

    with :math:`\mathbf{e}_m` zero for a missing modality and
    :math:`\mathbf{m} \in \{0, 1\}^k` the presence mask. Trained after the
    model, with the model frozen and its score as the critic
    (:func:`~native_pyg.training.fit_structure_stand_in`); once
    :attr:`fitted`, :class:`~native_pyg.nn.NativE` uses it as the (present)
    structure of every entity without training triples that has a feature.

    Args:
        modalities (list[str]): The feature modalities, in the model's order.
        hidden_channels (int): Entity embedding size :math:`D_e`.
        hidden (int, optional): Hidden layer size (default: :obj:`512`).
    """

    def __init__(self, modalities: Sequence[str], hidden_channels: int, hidden: int = 512):
        super().__init__()
        self.modalities = check_modality_names(modalities)
        if not self.modalities:
            raise ValueError("StructureStandIn needs at least one feature modality")
        self.hidden_channels, self.hidden = int(hidden_channels), int(hidden)
        num = len(self.modalities)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(num * (hidden_channels + 1), hidden),
            torch.nn.LeakyReLU(),
            torch.nn.Linear(hidden, hidden_channels),
        )
        # persistent: a checkpoint says whether the stand-in may be used
        self.register_buffer('fitted', torch.tensor(False))

    def reset_parameters(self):
        r"""Resets all learnable parameters (and marks the module unfitted)."""
        self.mlp[0].reset_parameters()
        self.mlp[2].reset_parameters()
        self.fitted.fill_(False)

    def forward(self, emb: Tensor, mask: Tensor) -> Tensor:
        r"""Stand-in structural embeddings.

        Args:
            emb (torch.Tensor): ``[U, |M_feat|, De]`` feature modality
                embeddings (missing ones zero).
            mask (torch.Tensor): ``[U, |M_feat|]`` presence.

        Returns:
            ``[U, De]``.
        """
        expected = (len(self.modalities), self.hidden_channels)
        if emb.dim() != 3 or tuple(emb.shape[1:]) != expected:
            raise ValueError(f"expected feature modality embeddings [U, {expected[0]}, "
                             f"{expected[1]}], got {tuple(emb.shape)}")
        weight = self.mlp[0].weight
        emb = emb.to(weight.dtype) * mask.unsqueeze(-1).to(weight.dtype)
        return self.mlp(torch.cat([emb.flatten(1), mask.to(weight.dtype)], dim=-1))

    def complete(self, emb: Tensor, mask: Tensor, without: Tensor) -> Tuple[Tensor, Tensor]:
        r"""Once :attr:`fitted`: ``(emb, mask)`` (``[U, 1 + |M_feat|, De]``,
        ``[U, 1 + |M_feat|]``, structure first) with the generated structure,
        present, for the rows ``without`` (``[U]`` bool: no training triple)
        that have a feature; unchanged before."""
        if not bool(self.fitted):
            return emb, mask
        rows = (without & mask[:, 1:].any(1)).nonzero().view(-1)
        if rows.numel() == 0:
            return emb, mask
        structure = self(emb[rows, 1:], mask[rows, 1:]).to(emb.dtype)
        emb, mask = emb.clone(), mask.clone()
        emb[rows, 0], mask[rows, 0] = structure, True
        return emb, mask

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.modalities}, {self.hidden_channels}, '
                f'hidden={self.hidden}, fitted={bool(self.fitted)})')


def _stood_in(emb: Tensor, mask: Tensor, index: Tensor,
              structure: Tensor) -> Tuple[Tensor, Tensor]:
    """Rows ``index`` of ``(emb, mask)`` with the structure column replaced
    by ``structure`` (generated, one row per index), present."""
    row_mask = mask[index].clone()
    row_mask[:, 0] = True
    return torch.cat([structure.unsqueeze(1).to(emb.dtype), emb[index, 1:]], dim=1), row_mask


def stand_in_terms(model, emb: Tensor, mask: Tensor, head_index: Tensor, rel_type: Tensor,
                   tail_index: Tensor, neg_index: Tensor, stand_in_head: Tensor
                   ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""``(pos [B], neg [B, K], gap [B])`` of a batch for
    :func:`~native_pyg.training.fit_structure_stand_in`: scores where the
    side of each triple given by ``stand_in_head`` (``[B]`` bool; else the
    tail) and every negative ``neg_index`` (``[B, K]``, replacing the other
    side) have generated structure, and :math:`\|\hat{\mathbf{e}}_s -
    \mathbf{e}_s\|^2` of the stood-in side.

    The indices are rows of ``(emb, mask)``: entity ids where those hold
    every entity, or the rows :meth:`NativE.embed_entities` gives a step's
    entities.

    Args:
        model (NativE): The (frozen) model with its :attr:`stand_in`.
        emb, mask: ``(emb [U, |M|, De], mask [U, |M|])`` modality embeddings
            of the entities the indices point into, their structure
            :math:`\mathbf{e}_s` the one a training step sees: all entities'
            (:meth:`NativE.modality_embeddings`) with the lookup table; with
            a structural encoder, the step's entities' from the encoder over
            the training graph without the step's triples (inside
            :meth:`NativE.subgraph`).
    """
    side = stand_in_head.view(-1, 1)
    query = torch.where(stand_in_head, head_index, tail_index)
    # each unique entity generated once (negatives repeat)
    unique, inverse = torch.unique(torch.cat([query, neg_index.reshape(-1)]), return_inverse=True)
    structure = model.stand_in(emb[unique, 1:], mask[unique, 1:])[inverse]
    q_emb, q_mask = _stood_in(emb, mask, query, structure[:query.numel()])
    n_emb, n_mask = _stood_in(emb, mask, neg_index.reshape(-1), structure[query.numel():])
    q = model.fuse(q_emb, q_mask, rel_type)
    o = model.fuse(emb, mask, rel_type, torch.where(stand_in_head, tail_index, head_index))
    n = model.fuse(n_emb, n_mask, rel_type.repeat_interleave(neg_index.size(1)))
    head, tail = torch.where(side, q, o), torch.where(side, o, q)
    rel = model.relation_embedding(rel_type)
    gap = (structure[:query.numel()] - emb[query, 0]).pow(2).sum(-1)
    return (model.scorer(head, rel, tail),
            model.scorer.score_corrupted(head, rel, tail, n.view(*neg_index.shape, -1),
                                         ~stand_in_head), gap)
