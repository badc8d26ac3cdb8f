"""The structural encoder NativE composes: a named PyG-style GNN
(:data:`~native_pyg.nn.gnn.STRUCTURAL_ENCODERS`) or a user's module, which
is tried once on a two-entity graph when the model is built, so that a
module of the wrong width is one line naming the width expected
(``model.entity_dim``), not a shape error at the first step."""
from __future__ import annotations

from typing import Mapping, Optional, Union

import torch

from native_pyg.data.safe_load import first_line
from native_pyg.nn.gnn import STRUCTURAL_ENCODERS
from native_pyg.nn.modes import evaluating


def make_structural_encoder(encoder: Union[str, torch.nn.Module, None], width: int,
                            num_relations: int,
                            kwargs: Optional[Mapping] = None) -> Optional[torch.nn.Module]:
    """``encoder`` by name (built with ``kwargs``), or the user's module
    once :func:`check_encoder_width` accepts it, or ``None``."""
    if isinstance(encoder, str):
        if encoder not in STRUCTURAL_ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}; expected one of "
                             f"{sorted(STRUCTURAL_ENCODERS)} or a module")
        return STRUCTURAL_ENCODERS[encoder](width, num_relations, **dict(kwargs or {}))
    if encoder is not None:
        check_encoder_width(encoder, width)
    return encoder


def check_encoder_width(encoder: torch.nn.Module, width: int) -> None:
    r"""Runs ``encoder(x [2, width], edge_index [2, 2], edge_type [2])``
    without gradients, on the encoder's own device and dtype, and checks
    the output is ``[2, width]``.

    Raises:
        ValueError: One line naming ``width`` and what the encoder did.
    """
    param = next(encoder.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else ('cpu', torch.float)
    x = torch.randn(2, width, device=device, dtype=dtype)
    edge_index = torch.tensor([[0, 1], [1, 0]], device=device)
    edge_type = torch.zeros(2, dtype=torch.long, device=device)
    need = (f"the encoder must map x [n, {width}] (model.entity_dim: twice hidden_channels "
            f"for RotatE and ComplEx) to [n, {width}]")
    try:  # in eval mode: no dropout, no batch statistics updated by the probe
        with evaluating(encoder), torch.no_grad():
            out = encoder(x, edge_index, edge_type)
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        raise ValueError(f"{need}; on x [2, {width}] it failed: {first_line(e)}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, width):
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{need}; on x [2, {width}] it returned {got}")
