r"""A linear layer over frozen inputs kept in their stored precision: raw
feature rows read as float16 from a disk store enter a modality projection's
first layer without a float32 copy held for the backward pass."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class _FrozenInputLinear(torch.autograd.Function):
    r""":math:`\mathbf{Y} = \mathbf{X}\mathbf{W}^\top + \mathbf{b}` a block of
    rows of :math:`\mathbf{X}` at a time, cast to :math:`\mathbf{W}`'s dtype;
    :math:`\partial L/\partial \mathbf{W} = \sum_k \mathbf{G}_k^\top
    \mathbf{X}_k` over the same blocks and :math:`\partial L/\partial
    \mathbf{b} = \sum_i \mathbf{G}_i`. :math:`\mathbf{X}` gets no gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                block_rows: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.block_rows = block_rows
        out = weight.new_empty(x.size(0), weight.size(0))
        for start in range(0, x.size(0), block_rows):
            part = slice(start, start + block_rows)
            out[part] = torch.nn.functional.linear(x[part].to(weight.dtype), weight, bias)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_w = torch.zeros_like(weight)
            for start in range(0, x.size(0), ctx.block_rows):
                part = slice(start, start + ctx.block_rows)
                grad_w += grad[part].t().mm(x[part].to(weight.dtype))
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return None, grad_w, grad_b, None


def frozen_input_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                        block_rows: int = 4096) -> Tensor:
    r"""``linear(x.to(weight.dtype), weight, bias)`` for a 2-D ``x`` that needs
    no gradient (raw feature rows), computed ``block_rows`` rows at a time:
    the backward pass keeps ``x`` as given (e.g. float16, half the bytes of
    float32) and casts one block at a time. Equal to the plain layer up to
    the order of the sums over blocks (a float32 rounding).

    Args:
        x (torch.Tensor): Inputs ``[n, d_in]``, any floating dtype; not
            differentiated.
        weight (torch.Tensor): ``[d_out, d_in]``.
        bias (torch.Tensor, optional): ``[d_out]``. (default: :obj:`None`)
        block_rows (int): Rows cast and multiplied at once. (default: 4096)
    """
    if x.dim() != 2:
        raise ValueError(f"frozen_input_linear needs 2-D inputs, got shape {tuple(x.shape)}")
    if block_rows <= 0:
        raise ValueError(f"block_rows must be positive, got {block_rows}")
    if x.requires_grad:
        raise ValueError("frozen_input_linear: x must not require a gradient")
    return _FrozenInputLinear.apply(x, weight, bias, int(block_rows))
