r"""ReDAF: relation-guided dual adaptive fusion of modality embeddings."""
from __future__ import annotations

from typing import Mapping, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.utils import softmax

from native_pyg.kernels.activations import tanh
from native_pyg.nn.missing import Missing
from native_pyg.kernels.weighted_bag import weighted_bag

FUSIONS = ('redaf', 'mean')
#: rows of one tile of the weighted sum when all rows are fused without gradient
FUSE_TILE = 2048
MISSING = tuple(m.value for m in Missing)


def check_fusion_options(fusion: str, missing: str) -> None:
    """Rejects unknown ``fusion`` / ``missing`` options with a clear error."""
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    Missing.of(missing)

EmbeddingInput = Union[Tensor, Mapping[str, Tensor]]
MaskInput = Optional[Union[Tensor, Mapping[str, Tensor]]]


def _stack(emb: EmbeddingInput, mask: MaskInput) -> Tuple[Tensor, Optional[Tensor]]:
    """``([U, M, D], [U, M] | None)`` from tensors or name-keyed dicts."""
    if isinstance(emb, Mapping):
        names = list(emb)
        stacked = torch.stack([emb[m] for m in names], dim=1)
        if isinstance(mask, Mapping):
            ones = torch.ones(stacked.size(0), dtype=torch.bool, device=stacked.device)
            mask = torch.stack([mask[m].bool() if m in mask else ones for m in names], dim=1)
        return stacked, mask
    if isinstance(mask, Mapping):
        raise TypeError("a mask dict needs an embedding dict (to match modality names)")
    return emb, mask


def weighted_sum(emb: Tensor, weights: Tensor) -> Tensor:
    r""":math:`\sum_m w_{u,m}\, \mathbf{e}_{u,m}`: ``[U, M, D]`` rows
    weighted by ``[U, M]``, without gradient, :data:`FUSE_TILE` rows at a
    time (one pass over ``emb`` in cache, where a batched product of ``[1,
    M] x [M, D]`` matrices is bound by memory traffic). A row's result does
    not depend on the other rows, so rows fused in blocks equal rows fused
    all at once."""
    fused = emb.new_empty(emb.size(0), emb.size(2))
    weights = weights.to(emb.dtype)
    for start in range(0, emb.size(0), FUSE_TILE):
        e, w, out = (x[start:start + FUSE_TILE] for x in (emb, weights, fused))
        torch.mul(e[:, 0], w[:, :1], out=out)
        for m in range(1, emb.size(1)):
            out.addcmul_(e[:, m], w[:, m:m + 1])
    return fused


class ReDAF(torch.nn.Module):
    r"""Relation-guided dual adaptive fusion.

    For entity :math:`e` with modality embeddings :math:`\mathbf{e}_m`
    (:math:`m` ranging over the modalities :math:`M_e` the entity has,
    the structural embedding included) in the context of relation :math:`r`:

    .. math::
        a_m &= \mathbf{u}^\top \tanh(\mathbf{e}_m), \qquad
        \tau_r = \sigma(\theta_r), \\
        w_m &= \frac{\exp(a_m / \tau_r)}{\sum_{m' \in M_e} \exp(a_{m'} / \tau_r)},
        \qquad
        \mathbf{e}_{\mathrm{joint}}(e, r) = \sum_{m \in M_e} w_m\, \mathbf{e}_m,

    with one learned vector :math:`\mathbf{u}` (no bias) shared by all
    modalities and one learned scalar :math:`\theta_r` per relation. The
    softmax is a scatter softmax over the present (entity, modality) pairs
    grouped by entity, so a missing modality gets weight exactly :math:`0`.

    Args:
        channels (int): Embedding size :math:`D`.
        num_relations (int): Number of relations :math:`R`.
        relation_temperature (bool, optional): Learn :math:`\tau_r`; if
            :obj:`False`, :math:`\tau = 1` (plain adaptive fusion, the
            AdaMF-style ablation). (default: :obj:`True`)
        fusion (str, optional): ``'redaf'``, or ``'mean'`` for the mean of the
            present modality embeddings (no parameters). (default: ``'redaf'``)
        missing (str, optional): ``'mask'`` lets only present modalities take
            part; ``'random'`` and ``'zero'`` ignore the mask, so every
            modality takes part whatever it holds (the caller supplies the
            random or zero-row embeddings). (default: ``'mask'``)
        theta_range (float, optional): :math:`\theta_r \sim
            \mathcal{U}(\pm\,\text{theta\_range})` at initialisation.
            (default: :obj:`0.05`)
    """

    def __init__(self, channels: int, num_relations: int, relation_temperature: bool = True,
                 fusion: str = 'redaf', missing: str = 'mask', theta_range: float = 0.05):
        super().__init__()
        check_fusion_options(fusion, missing)
        self.channels = int(channels)
        self.num_relations = int(num_relations)
        self.fusion = fusion
        self.missing = Missing.of(missing)
        self.relation_temperature = bool(relation_temperature) and fusion == 'redaf'
        self.theta_range = float(theta_range)
        # only the parameters the chosen variant uses exist (nothing idle to train)
        self.u = torch.nn.Linear(channels, 1, bias=False) if fusion == 'redaf' else None
        self.theta = (torch.nn.Embedding(num_relations, 1)
                      if self.relation_temperature else None)
        self.reset_parameters()

    def reset_parameters(self):
        r"""Resets all learnable parameters of the module."""
        if self.u is not None:
            self.u.reset_parameters()
        if self.theta is not None:
            torch.nn.init.uniform_(self.theta.weight, -self.theta_range, self.theta_range)

    def temperature(self, rel_type: Tensor) -> Tensor:
        r""":math:`\tau_r = \sigma(\theta_r)` of ``rel_type`` (ones without a
        relational temperature), flattened."""
        rel_type = torch.as_tensor(rel_type, device=self._device).view(-1)
        if self.theta is None:
            return torch.ones(rel_type.numel(), device=self._device)
        return torch.sigmoid(self.theta(rel_type)).view(-1)

    def _row_temperature(self, rel_type: Optional[Union[Tensor, int]], rows: int,
                         dtype: torch.dtype) -> Tensor:
        """:meth:`temperature` of one relation, or of one per output row."""
        if rel_type is None:
            raise ValueError("ReDAF with relation_temperature needs rel_type")
        tau = self.temperature(rel_type).to(dtype)
        if tau.numel() not in (1, rows):
            raise ValueError(f"rel_type has {tau.numel()} entries for {rows} rows")
        return tau

    @property
    def attends(self) -> bool:
        """Whether the weights come from attention logits :meth:`logits`
        (``'redaf'``; ``'mean'`` has none)."""
        return self.u is not None

    def logits(self, emb: Tensor) -> Tensor:
        r"""Attention logits :math:`a_m = \mathbf{u}^\top\tanh(\mathbf{e}_m)`:
        ``[U, M, D] -> [U, M]`` (independent of the relation)."""
        return self.u(tanh(emb)).squeeze(-1)

    @property
    def _device(self) -> Optional[torch.device]:
        p = next(self.parameters(), None)
        return None if p is None else p.device

    def forward(self, emb: EmbeddingInput, mask: MaskInput = None,
                rel_type: Optional[Union[Tensor, int]] = None,
                index: Optional[Tensor] = None,
                logits: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        r"""Fuses modality embeddings.

        Args:
            emb (torch.Tensor or dict): ``[U, M, D]`` modality embeddings of
                ``U`` entities, or a dict ``{modality: [U, D]}`` (its order is
                the column order of the weights).
            mask (torch.Tensor or dict, optional): ``[U, M]`` bool presence
                (or ``{modality: [U]}``; absent keys count as present);
                every output row needs at least one present modality.
                (default: :obj:`None`, all present)
            rel_type (torch.Tensor or int, optional): ``[B]`` relation ids of
                the output rows, or a single id applied to all of them (fuse
                all entities under one relation in one call). Needed when the
                relational temperature is on. (default: :obj:`None`)
            index (torch.Tensor, optional): ``[B]`` row of ``emb`` for every
                output row, so that entities shared by many rows are passed
                (and their logits computed) once.
                (default: :obj:`None`, ``arange(U)``)
            logits (torch.Tensor, optional): ``[U, M]`` precomputed
                :meth:`logits` of ``emb`` (they do not depend on the
                relation, so fusing all entities under many relations needs
                them once). (default: :obj:`None`, computed here)

        Returns:
            ``(fused [B, D], weights [B, M])``; missing modalities have weight
            exactly :math:`0` under ``missing='mask'``.
        """
        emb, mask = _stack(emb, mask)
        num_rows, num_modalities = emb.size(0), emb.size(1)
        if mask is None or not self.missing.masked:
            mask = torch.ones(num_rows, num_modalities, dtype=torch.bool, device=emb.device)
        mask = mask.to(emb.device).bool()
        if index is None and not torch.is_grad_enabled():  # all rows: 1-vs-all candidates
            weights = self.dense_weights(emb, mask, rel_type, logits)
            return weighted_sum(emb, weights), weights
        row_mask = mask if index is None else mask[index]
        size = row_mask.size(0)

        # (output row, modality) pairs present, row-major, and their source row in emb
        row, col = row_mask.nonzero(as_tuple=True)
        src = row if index is None else index[row]

        if self.fusion == 'mean':
            count = row_mask.sum(dim=1).clamp(min=1).to(emb.dtype)
            pair_weight = 1.0 / count[row]
        else:
            if logits is not None:
                pair_logit = logits[src, col]
            elif index is not None and src.numel() < emb.size(0) * num_modalities:
                # fewer (row, modality) pairs than embeddings: compute only theirs
                pair_logit = self.u(tanh(emb[src, col])).squeeze(-1)
            else:
                pair_logit = self.logits(emb)[src, col]
            pair_logit = pair_logit.to(emb.dtype)  # autocast may lower it
            if self.theta is not None:
                tau = self._row_temperature(rel_type, size, emb.dtype)
                pair_logit = pair_logit / (tau if tau.numel() == 1 else tau[row])
            pair_weight = softmax(pair_logit, row, num_nodes=size)

        weights = emb.new_zeros(size, num_modalities).index_put((row, col), pair_weight)
        # sum_m w_m e_m (missing modalities weigh 0)
        if index is None:
            fused = torch.bmm(weights.unsqueeze(1).to(emb.dtype), emb).squeeze(1)
        else:  # a weighted bag of the rows' M modality rows: no [B, M, D] gathered copy
            # (one pass over the rows, forward and backward, where gather + bmm makes copies)
            bag = index.unsqueeze(1) * num_modalities + torch.arange(
                num_modalities, device=index.device)
            fused = weighted_bag(emb.reshape(-1, emb.size(-1)), bag, weights.to(emb.dtype))
        return fused, weights

    def dense_weights(self, emb: Tensor, mask: Optional[Tensor] = None,
                      rel_type: Optional[Union[Tensor, int]] = None,
                      logits: Optional[Tensor] = None) -> Tensor:
        r"""``[U, M]`` weights :math:`w_m` of every row of ``emb [U, M, D]``
        (arguments as :meth:`forward`, without ``index``) as a dense masked
        softmax: what fusing all candidates under one relation needs, with
        :func:`weighted_sum` (:meth:`forward` without gradient and
        ``index``). A row's weights do not depend on the other rows."""
        if mask is None or not self.missing.masked:
            mask = torch.ones(emb.shape[:2], dtype=torch.bool, device=emb.device)
        mask = mask.to(emb.device).bool()
        if self.fusion == 'mean':
            return mask.to(emb.dtype) / mask.sum(1, keepdim=True).clamp(min=1).to(emb.dtype)
        a = (self.logits(emb) if logits is None else logits).to(emb.dtype)
        if self.theta is not None:
            a = a / self._row_temperature(rel_type, emb.size(0), emb.dtype).view(-1, 1)
        # over the first dimension of the transpose: vectorised across rows, where a last
        # dimension of size M leaves a short loop per row
        a = a.masked_fill(~mask, float('-inf')).t().contiguous()
        weights = torch.softmax(a, dim=0).t()
        return weights.masked_fill(~mask, 0.0)  # a row without modalities: all 0

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.channels}, num_relations={self.num_relations}, '
                f'fusion={self.fusion!r}, relation_temperature={self.relation_temperature}, '
                f'missing={self.missing!r})')
