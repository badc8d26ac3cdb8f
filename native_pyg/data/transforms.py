"""Missing-modality transforms for the robustness experiments of the paper.

Two settings, at missing rates from 0.1 to 0.9:

- *entity-level* missing (:class:`EntityMissing`): a random fraction of the
  entities loses every feature modality and keeps only its structural
  embedding;
- *modality-level* missing (:class:`ModalityMissing`): every (entity,
  modality) pair is dropped independently, so an entity can lose its image
  but keep its text.

Both only touch the modality stores (``data[m].x`` rows zeroed,
``data[m].mask`` set to ``False``); the triples stay as they are.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from native_pyg.data.schema import ENTITY, modalities as data_modalities


def _check_rate(rate: float) -> float:
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:  # also rejects NaN
        raise ValueError(f"missing rate must lie in [0, 1], got {rate}")
    return rate


def _drop(data: HeteroData, modality: str, remove: Tensor) -> None:
    """Removes ``modality`` from the entities where ``remove`` is True.
    Assigns new tensors, so stores shared with the input graph keep theirs."""
    store = data[modality]
    mask = store.mask & ~remove
    store.x = store.x.masked_fill(~mask.unsqueeze(1), 0)
    store.mask = mask


class EntityMissing(BaseTransform):
    r"""Entity-level missing modalities: removes *all* feature modalities of
    :math:`k = \mathrm{round}(\rho N)` entities drawn uniformly at random
    without replacement,

    .. math::
        \mathcal{S} \sim \mathrm{Uniform}\{S \subseteq \mathcal{E} : |S| = k\},
        \qquad \mathrm{mask}_m[e] \leftarrow \mathrm{mask}_m[e] \wedge
        [e \notin \mathcal{S}] \quad \forall m,

    and zeroes the removed feature rows. The chosen entities keep only their
    structural embedding (the paper's entity-level setting, :math:`\rho`
    from 0.1 to 0.9). The same ``seed`` removes the same entities on every
    call; the input graph is never modified and the triples are untouched.

    Args:
        rate (float): Fraction :math:`\rho \in [0, 1]` of entities to strip.
        seed (int, optional): Seed of the random choice. (default: :obj:`0`)
    """
    def __init__(self, rate: float, seed: int = 0):
        self.rate = _check_rate(rate)
        self.seed = int(seed)

    def forward(self, data: HeteroData) -> HeteroData:
        num_entities = data[ENTITY].num_nodes
        k = round(self.rate * num_entities)
        gen = torch.Generator().manual_seed(self.seed)
        chosen = torch.randperm(num_entities, generator=gen)[:k]
        remove = torch.zeros(num_entities, dtype=torch.bool)
        remove[chosen] = True
        for m in data_modalities(data):
            _drop(data, m, remove)
        return data

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(rate={self.rate}, seed={self.seed})'


class ModalityMissing(BaseTransform):
    r"""Modality-level missing modalities: drops every (entity, modality)
    pair of the selected modalities independently with probability
    :math:`\rho`,

    .. math::
        \mathrm{mask}_m[e] \leftarrow \mathrm{mask}_m[e] \wedge [u_{e,m} \geq \rho],
        \qquad u_{e,m} \sim \mathcal{U}(0, 1) \text{ i.i.d.},

    and zeroes the removed feature rows (the paper's modality-level
    setting, :math:`\rho` from 0.1 to 0.9). The draws :math:`u_{e,m}` are
    made for every modality of the graph in canonical order, so the pattern
    of one modality does not depend on which others are selected. The same
    ``seed`` drops the same pairs on every call; the input graph is never
    modified and the triples are untouched.

    Args:
        rate (float): Drop probability :math:`\rho \in [0, 1]`.
        modalities (list[str], optional): Modalities to drop from; all
            feature modalities of the graph when :obj:`None`.
            (default: :obj:`None`)
        seed (int, optional): Seed of the random draws. (default: :obj:`0`)
    """
    def __init__(self, rate: float, modalities: Optional[Sequence[str]] = None,
                 seed: int = 0):
        self.rate = _check_rate(rate)
        if isinstance(modalities, str):
            modalities = [modalities]
        self.modalities: Optional[List[str]] = (None if modalities is None
                                                else list(modalities))
        self.seed = int(seed)

    def forward(self, data: HeteroData) -> HeteroData:
        present = data_modalities(data)
        selected = present if self.modalities is None else self.modalities
        unknown = [m for m in selected if m not in present]
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; the graph has {present}")
        num_entities = data[ENTITY].num_nodes
        gen = torch.Generator().manual_seed(self.seed)
        draws = torch.rand(len(present), num_entities, generator=gen)
        for m, u in zip(present, draws):
            if m in selected:
                _drop(data, m, u < self.rate)
        return data

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(rate={self.rate}, '
                f'modalities={self.modalities}, seed={self.seed})')
