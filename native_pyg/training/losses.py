"""Losses over positive scores ``[B]`` and negative scores ``[B, K]``."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from native_pyg.data.relations import unpack_triples


def self_adversarial_loss(pos: Tensor, neg: Tensor, adv_temperature: float = 2.0) -> Tensor:
    r"""The self-adversarial sigmoid loss of RotatE, halved as in the NativE code:

    .. math::
        \mathcal{L} = \frac{1}{2}\Big(-\log\sigma(S^+) - \sum_i p_i \log\sigma(-S^-_i)\Big),
        \qquad p = \mathrm{softmax}(\alpha S^-)\ \text{(no gradient)}

    averaged over the batch; scores already include the margin
    (:math:`S = \gamma - d`). ``adv_temperature = 0`` gives uniform weights.
    """
    weights = torch.softmax(adv_temperature * neg.detach(), dim=-1)
    neg_loss = -(weights * F.logsigmoid(-neg)).sum(dim=-1)
    pos_loss = -F.logsigmoid(pos)
    return (pos_loss.mean() + neg_loss.mean()) / 2


def margin_ranking_loss(pos: Tensor, neg: Tensor, margin: float = 1.0) -> Tensor:
    r"""Pairwise hinge loss :math:`\max(0, m - S^+ + S^-_i)`, averaged."""
    return F.relu(margin - pos.unsqueeze(-1) + neg).mean()


def structural_l2(model: torch.nn.Module, head_index: Tensor, rel_type: Tensor,
                  tail_index: Optional[Tensor] = None) -> Tensor:
    r"""The L2 regulariser of a :class:`~native_pyg.nn.NativE` model over
    its structural (table) embeddings only, of triples ``(head_index,
    rel_type, tail_index)`` or ``(edge_index, edge_type)``:

    .. math::
        \frac{1}{3}\big(\overline{\mathbf{h}_s^2} + \overline{\mathbf{t}_s^2}
        + \overline{\mathbf{r}^2}\big),

    each bar the mean over the rows and dimensions.
    """
    h, r, t = (torch.as_tensor(i, device=model.device).long()
               for i in unpack_triples(head_index, rel_type, tail_index))
    hs, ts = model.entity_emb.row_mean_squares(h, t)  # sparse or dense, as the table is
    rs = model.rel_emb.weight.pow(2).mean(dim=1)[r]  # no [rows, Dr] copy either
    return (hs.mean() + ts.mean() + rs.mean()) / 3


LOSSES = {'self_adversarial': self_adversarial_loss, 'margin': margin_ranking_loss}


def corruption_side(corrupt_head: Tensor, neg: Tensor) -> Tensor:
    """``corrupt_head`` of a batch as ``[B, 1]`` (one side per positive) or
    ``[B, K]`` (one per negative), broadcastable against ``neg`` ``[B, K]``."""
    batch, num_neg = neg.shape
    if corrupt_head.shape == (batch,):
        return corrupt_head.view(batch, 1)
    if corrupt_head.shape == (batch, num_neg):
        return corrupt_head
    raise ValueError(f"KGBatch.corrupt_head: expected shape [{batch}] or [{batch}, {num_neg}] "
                     f"for neg [{batch}, {num_neg}], got {list(corrupt_head.shape)}")


def kgc_loss(model: torch.nn.Module, batch: Any, cfg: Any, fuse_once: bool = False) -> Tensor:
    r"""The link-prediction loss of a training batch (positives ``batch.pos``
    ``[B, 3]``, negatives ``batch.neg`` ``[B, K]`` on the sides
    ``batch.corrupt_head``): ``training.loss`` (:data:`LOSSES`) of the
    model's scores, plus ``training.regul_rate`` times :func:`structural_l2`
    over the positive and negative triples (as the reference code),

    .. math::
        \mathcal{L} = \ell(S^+, S^-) + \lambda\, \mathrm{L2}(\mathcal{T}^+ \cup \mathcal{T}^-).

    ``fuse_once``: the negatives are shared by the batch (fused once)."""
    h, r, t = batch.pos.unbind(1)
    neg, corrupt_head = batch.neg, batch.corrupt_head
    flip = corruption_side(corrupt_head, neg)
    pos_s, neg_s = model.score_negatives(h, r, t, neg, corrupt_head, fuse_once=fuse_once)
    setting = cfg.adv_temperature if cfg.loss == 'self_adversarial' else cfg.ranking_margin
    loss = LOSSES[cfg.loss](pos_s.float(), neg_s.float(), setting)
    if cfg.regul_rate > 0:
        heads = torch.cat([h, torch.where(flip, neg, h.unsqueeze(1)).flatten()])
        tails = torch.cat([t, torch.where(flip, t.unsqueeze(1), neg).flatten()])
        rels = torch.cat([r, r.repeat_interleave(neg.size(1))])
        loss = loss + cfg.regul_rate * structural_l2(model, heads, rels, tails)
    return loss
