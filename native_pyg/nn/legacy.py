r"""Checkpoints written before the entity-inputs redesign: their NativE
state-dict keys and where those entries live now."""
from __future__ import annotations

from typing import Dict, Mapping

from torch import Tensor

#: state-dict key prefixes of checkpoints written before the entity-inputs
#: redesign, and where those entries live now
LEGACY_KEYS = {'encoders.': 'projections.', 'added_entities.': 'inputs.added.'}


def upgrade_state_dict(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """A NativE ``state_dict`` with the keys of older checkpoints mapped to
    today's (:data:`LEGACY_KEYS`); other keys are kept."""
    out = {}
    for key, value in state_dict.items():
        for old, new in LEGACY_KEYS.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out
