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

PyTorch's CPU backward of the input gradient accumulates entry by entry;
on the 2-core machine of ``docs/benchmarks.md`` it took 8x its forward in an
R-GCN step (95 ms against 12 ms for a DB15K layer). The input gradient is
itself a weighted bag, over the output gradient's rows grouped by source
row (the entries sorted by :math:`i_e`), and :func:`weighted_bag` computes it
so, with PyTorch's parallel forward kernel: the R-GCN step on DB15K took
0.93x the time (paired, one process). On CUDA, PyTorch's own backward is
used.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


class _WeightedBag(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor, indices: Tensor, offsets: Tensor, weights: Tensor) -> Tensor:
        ctx.save_for_backward(x, indices, offsets, weights)
        return F.embedding_bag(indices, x, offsets, mode='sum', per_sample_weights=weights)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, indices, offsets, weights = ctx.saved_tensors
        grad = grad.contiguous()
        num = indices.numel()
        sizes = torch.diff(offsets, append=offsets.new_tensor([num]))
        bag = torch.repeat_interleave(torch.arange(offsets.numel(), device=x.device), sizes,
                                      output_size=num)  # b(e)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:  # one bag per source row s: its entries' w_e dL/do_b(e)
            order = torch.argsort(indices, stable=True)
            starts = torch.zeros(x.size(0) + 1, dtype=torch.long, device=x.device)
            torch.cumsum(torch.bincount(indices, minlength=x.size(0)), 0, out=starts[1:])
            grad_x = F.embedding_bag(bag[order], grad, starts, mode='sum',
                                     per_sample_weights=weights[order].to(grad.dtype),
                                     include_last_offset=True).to(x.dtype)
        if ctx.needs_input_grad[3]:  # x_{i_e} . dL/do_b(e), PyTorch's own kernel
            grad_w = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                grad, x.to(grad.dtype), indices, offsets, bag, 0, -1).to(weights.dtype)
        return grad_x, None, None, grad_w


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
    if x.device.type != 'cpu' or not torch.is_grad_enabled():
        return F.embedding_bag(indices, x, offsets, mode='sum', per_sample_weights=weights)
    return _WeightedBag.apply(x, indices, offsets, weights)
