r"""Structure dropout: training NativE to place entities from their
modalities alone."""
from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor


class StructureDropout:
    r"""Per training step, hides the structural embedding of each entity
    independently with probability :math:`p`,

    .. math::
        \tilde{M}_e = M_e \setminus \{s\} \quad \text{with probability } p,

    so that ReDAF and the modality encoders learn to place an entity whose
    structure is missing (an entity with no training triple, or one added
    after training). Entities without any feature keep their structure (see
    :meth:`NativE.hidden_structure <native_pyg.nn.NativE.hidden_structure>`).
    Draws come from its own seeded generator, whose state checkpoints keep.

    Args:
        p (float): Probability of hiding an entity's structure in a step.
        num_entities (int): Number of entities :math:`N`.
        seed (int): Seed of the draws. (default: :obj:`0`)
    """
    def __init__(self, p: float, num_entities: int, seed: int = 0):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"training.structure_dropout must be in [0, 1), got {p}")
        self.p, self.num_entities = float(p), int(num_entities)
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self) -> Tensor:
        """``[N]`` bool: the entities whose structure this step hides."""
        return torch.rand(self.num_entities, generator=self.generator) < self.p

    def state_dict(self) -> Dict[str, Tensor]:
        return {'generator': self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Tensor]) -> None:
        self.generator.set_state(state['generator'])

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(p={self.p}, num_entities={self.num_entities})'
