"""Losses over positive scores ``[B]`` and negative scores ``[B, K]``."""
from __future__ import annotations

from typing import Optional

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
    table = model.entity_emb
    if table.sparse:  # gathered rows first: a sparse gradient
        hs, ts = (table(i).pow(2).mean(dim=1) for i in (h, t))
    else:  # per-entity means of squares, then gathered: no [rows, De] copies
        sq = table.weight.pow(2).mean(dim=1)
        hs, ts = sq[h], sq[t]
    rs = model.rel_emb.weight.pow(2).mean(dim=1)[r]  # no [rows, Dr] copy either
    return (hs.mean() + ts.mean() + rs.mean()) / 3


LOSSES = {'self_adversarial': self_adversarial_loss, 'margin': margin_ranking_loss}
