"""Losses over positive scores ``[B]`` and negative scores ``[B, K]``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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


LOSSES = {'self_adversarial': self_adversarial_loss, 'margin': margin_ranking_loss}
