r""":math:`\tanh` through the logistic sigmoid on CPUs.

ReDAF's attention logits :math:`\mathbf{u}^\top\tanh(\mathbf{e}_m)` and
R-GCN's activation apply :math:`\tanh` to every entity's embeddings in each
step. PyTorch's CPU ``tanh`` costs several times its ``sigmoid``
(``docs/benchmarks.md``); the identity

.. math::
    \tanh(x) = 2\,\sigma(2x) - 1, \qquad
    \frac{\partial \tanh(x)}{\partial x} = 1 - \tanh^2(x)

gives the same function in four passes over one buffer. Its
absolute error in float32 is at most about 2e-7 (PyTorch's ``tanh``:
3e-8), so values near 0 carry a larger relative error; in float64 the two
agree to 4e-16. Half-precision inputs, other devices and small tensors use
:func:`torch.tanh`.
"""
from __future__ import annotations

import torch
from torch import Tensor

#: below this many elements the saving is smaller than the calls' overhead
MIN_NUMEL = 1 << 15


def _sigmoid_tanh(x: Tensor) -> Tensor:
    y = torch.mul(x, 2)
    return y.sigmoid_().mul_(2).sub_(1)


class _SigmoidTanh(torch.autograd.Function):
    """:math:`2\\sigma(2x) - 1` with :math:`\\tanh`'s backward from the output."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = _sigmoid_tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        y, = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def tanh(x: Tensor) -> Tensor:
    r""":math:`\tanh(x)`, computed as :math:`2\sigma(2x) - 1` for large
    float32 and float64 CPU tensors (see the module's docstring); the same
    gradient, :math:`1 - \tanh^2(x)`."""
    if (x.device.type != 'cpu' or x.dtype not in (torch.float32, torch.float64)
            or x.numel() < MIN_NUMEL):
        return torch.tanh(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return _SigmoidTanh.apply(x)
    return _sigmoid_tanh(x)
