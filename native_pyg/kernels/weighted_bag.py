r"""A weighted sum of embedding rows per bag whose backward is a bag too.

ReDAF fuses each row's modality embeddings and R-GCN sums each
destination's weighted messages with one weighted
:func:`~torch.nn.functional.embedding_bag` ("sum" mode),

.. math::
    \mathbf{o}_b = \sum_{e \in b} w_e\, \mathbf{x}_{i_e}, \qquad
    \frac{\partial L}{\partial \mathbf{x}_s} = \sum_{e:\, i_e = s} w_e\,
    \frac{\partial L}{\partial \mathbf{o}_{b(e)}}, \qquad
    \frac{\partial L}{\partial w_e} = \mathbf{x}_{i_e}^\top
    \frac{\partial L}{\partial \mathbf{o}_{b(e)}}.

PyTorch's CPU backward of the input gradient accumulates entry by entry,
several times slower than its forward (figures in ``docs/benchmarks.md``).
The input gradient is itself a weighted bag, over the output gradient's
rows grouped by source row (the entries sorted by :math:`i_e`), and
:func:`weighted_bag` computes it so, with PyTorch's parallel forward
kernel. The weights' gradient stays
PyTorch's. On CUDA, PyTorch's own backward is used.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


class _InputGradientAsBag(torch.autograd.Function):
    """Passes a bag's output through unchanged and gives its input ``x`` the
    gradient of the bag, computed as a bag (the output was computed from
    ``x`` detached, so PyTorch's own backward only does the weights')."""

    @staticmethod
    def forward(ctx, out: Tensor, x: Tensor, indices: Tensor, offsets: Tensor,
                weights: Tensor) -> Tensor:
        ctx.save_for_backward(indices, offsets, weights)
        ctx.num_rows = x.size(0)
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad: Tensor):
        indices, offsets, weights = ctx.saved_tensors
        num = indices.numel()
        sizes = torch.diff(offsets, append=offsets.new_tensor([num]))
        bag = torch.repeat_interleave(torch.arange(offsets.numel(), device=grad.device), sizes,
                                      output_size=num)  # b(e)
        # one bag per source row s: its entries' w_e dL/do_b(e), in a stable order
        order = torch.argsort(indices, stable=True)
        starts = torch.zeros(ctx.num_rows + 1, dtype=torch.long, device=grad.device)
        torch.cumsum(torch.bincount(indices, minlength=ctx.num_rows), 0, out=starts[1:])
        grad_x = F.embedding_bag(bag[order], grad.contiguous(), starts, mode='sum',
                                 per_sample_weights=weights[order], include_last_offset=True)
        return grad, grad_x, None, None, None


def weighted_bag(x: Tensor, indices: Tensor, weights: Tensor,
                 offsets: Optional[Tensor] = None) -> Tensor:
    r"""``F.embedding_bag(indices, x, offsets, mode='sum',
    per_sample_weights=weights)``: bags given by ``offsets`` over 1-D
    ``indices``, or one bag per row of 2-D ``indices`` (``offsets=None``,
    ``weights`` of the same shape), with the input gradient computed as a
    bag on CPUs (see the module's docstring); the same values and
    gradients."""
    if indices.dim() == 2:
        if offsets is not None:
            raise ValueError("weighted_bag: offsets need 1-D indices")
        offsets = torch.arange(0, indices.numel(), indices.size(1), device=indices.device)
        indices, weights = indices.reshape(-1), weights.reshape(-1)
    if x.device.type != 'cpu' or not (torch.is_grad_enabled() and x.requires_grad):
        return F.embedding_bag(indices, x, offsets, mode='sum', per_sample_weights=weights)
    out = F.embedding_bag(indices, x.detach(), offsets, mode='sum', per_sample_weights=weights)
    return _InputGradientAsBag.apply(out, x, indices, offsets, weights.detach())
