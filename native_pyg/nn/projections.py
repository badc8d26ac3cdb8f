r"""Modality projections: one MLP per feature modality, from its frozen raw
features into the entity embedding space (not to be confused with the
structural encoders of :mod:`native_pyg.nn.gnn`)."""
from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Protocol, Tuple

import torch
from torch import Tensor

from native_pyg.nn.frozen_input_linear import frozen_input_linear

#: the name of the structural "modality" (column 0 of every modality tensor)
STRUCTURE = 'structure'
#: without gradient, raw feature rows are read and projected this many float32 bytes at a time
PROJECT_BYTES = 2 ** 26


class EntityRows(Protocol):
    """What reads raw feature rows by entity id: :class:`EntityInputs
    <native_pyg.nn.entity_inputs.EntityInputs>`, a step's
    :class:`~native_pyg.loader.step_subgraph.StepSubgraph`, or any store with these
    two methods (``index=None``: all entities)."""

    def rows(self, modality: str, index: Optional[Tensor] = None) -> Tensor: ...

    def mask(self, modality: str, index: Optional[Tensor] = None) -> Tensor: ...


def check_modality_names(names: Iterable[str]) -> List[str]:
    """Validates feature modality names (usable as module and buffer names)."""
    names = list(names)
    for m in names:
        if not isinstance(m, str) or not m or '.' in m or m == STRUCTURE:
            raise ValueError(f"invalid modality name {m!r}: need a non-empty string without "
                             f"'.', other than {STRUCTURE!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate modality names in {names}")
    return names


class ModalityProjections(torch.nn.Module):
    r"""Projects the frozen raw features of every feature modality :math:`m`
    into the entity embedding space,

    .. math::
        \mathbf{e}_m = P_m(\mathbf{x}_m) = \mathbf{W}_2\,
        \mathrm{ReLU}(\mathbf{W}_1 \mathbf{x}_m + \mathbf{b}_1) + \mathbf{b}_2,
        \qquad \mathbf{W}_1 \in \mathbb{R}^{d \times d_m},
        \mathbf{W}_2 \in \mathbb{R}^{d \times d}.

    Args:
        in_channels (dict[str, int]): Modality name to raw feature size
            :math:`d_m` (the order is kept).
        out_channels (int): Entity embedding size :math:`d` (for complex
            scorers the full real size, e.g. :math:`2 \cdot` dim for RotatE).

    Example:
        >>> proj = ModalityProjections({'image': 383, 'text': 384}, 500)
        >>> out = proj({'image': torch.randn(8, 383)})  # {'image': [8, 500]}
    """

    def __init__(self, in_channels: Mapping[str, int], out_channels: int):
        super().__init__()
        self.in_channels = {m: int(d) for m, d in in_channels.items()}
        check_modality_names(self.in_channels)
        self.out_channels = int(out_channels)
        self.mlps = torch.nn.ModuleDict()
        for m, d in self.in_channels.items():
            if d <= 0:
                raise ValueError(f"modality {m!r}: feature size must be positive, got {d}")
            self.mlps[m] = torch.nn.Sequential(
                torch.nn.Linear(d, self.out_channels),
                torch.nn.ReLU(),
                torch.nn.Linear(self.out_channels, self.out_channels),
            )

    @property
    def modalities(self) -> List[str]:
        """The feature modality names, in order."""
        return list(self.in_channels)

    def reset_parameters(self):
        r"""Resets all learnable parameters of the module."""
        for mlp in self.mlps.values():
            for layer in mlp:
                if hasattr(layer, 'reset_parameters'):
                    layer.reset_parameters()

    def encode(self, modality: str, x: Tensor) -> Tensor:
        """Projects ``x [*, d_m]`` of one modality to ``[*, d]``. Rows of
        another float dtype (float16 from a disk store) are cast to the
        weights'; with gradient and more than one block of
        :data:`PROJECT_BYTES`, a block at a time, and kept as given for the
        backward pass (:func:`~native_pyg.nn.frozen_input_linear.frozen_input_linear`)."""
        mlp = self.mlps[modality]
        first, block = mlp[0], self._block_rows(modality)
        if x.dtype != first.weight.dtype and x.dim() == 2 and torch.is_grad_enabled() \
                and x.size(0) > block and not torch.is_autocast_enabled(x.device.type):
            return mlp[1:](frozen_input_linear(x, first.weight, first.bias, block))
        return mlp(x.to(first.weight.dtype))

    def project_entities(self, source: EntityRows, entity_index: Optional[Tensor], num: int,
                         like: Tensor, masked: bool = True) -> Tuple[List[Tensor], List[Tensor]]:
        r"""Projected embeddings ``[U, d]`` and presence masks ``[U]`` of every
        modality for the entities ``entity_index`` (``None``: all ``num``),
        reading raw rows from ``source``. With ``masked`` only present rows
        are read and projected, and missing ones are exactly zero; without,
        every row is projected and counted present. Dtype and device as
        ``like``."""
        cols, present = [], []
        for m in self.in_channels:
            if masked:
                mask = source.mask(m, entity_index)
                rows = mask.nonzero().view(-1)
                src = rows if entity_index is None else entity_index[rows]
                present.append(mask)
            else:
                rows = None
                src = entity_index  # None: all rows, as the source holds them
                present.append(torch.ones(num, dtype=torch.bool, device=like.device))
            if torch.is_grad_enabled() or (num if src is None else src.numel()) \
                    <= self._block_rows(m):
                e = self.encode(m, source.rows(m, src)).to(like.dtype)
                cols.append(like.new_zeros(num, self.out_channels).index_copy(0, rows, e)
                            if masked else e)
                continue
            # without gradient (evaluation, 1-vs-all): the raw rows a block at a time,
            # so that a chunk of 4096-d rows is never held whole as float32
            if rows is None:
                rows = torch.arange(num, device=like.device)
                src = rows if entity_index is None else entity_index
            e = like.new_zeros(num, self.out_channels)
            step = self._block_rows(m)
            for start in range(0, src.numel(), step):
                part = slice(start, start + step)
                e.index_copy_(0, rows[part], self.encode(m, source.rows(m, src[part])).to(like.dtype))
            cols.append(e)
        return cols, present

    def _block_rows(self, modality: str) -> int:
        """Raw rows of ``modality`` in :data:`PROJECT_BYTES` of float32."""
        return max(1, PROJECT_BYTES // (4 * self.in_channels[modality]))

    def mean_embedding(self, source: EntityRows, entity_index: Optional[Tensor], like: Tensor,
                       masked: bool = True) -> Tensor:
        r"""``[U, d]`` mean of the present projected modality embeddings of
        the entities ``entity_index`` (zero for an entity with none), as
        :meth:`project_entities` reads them."""
        cols, present = self.project_entities(source, entity_index, like.size(0), like, masked)
        weight = torch.stack(present, 1).to(like.dtype)
        return (torch.stack(cols, 1) * weight.unsqueeze(-1)).sum(1) \
            / weight.sum(1, keepdim=True).clamp(min=1)

    def forward(self, x_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
        """Projects every given modality: ``{m: [*, d_m]} -> {m: [*, d]}``."""
        return {m: self.encode(m, x) for m, x in x_dict.items()}

    def __repr__(self) -> str:
        dims = ', '.join(f'{m}: {d}' for m, d in self.in_channels.items())
        return f'{self.__class__.__name__}({{{dims}}}, out_channels={self.out_channels})'
