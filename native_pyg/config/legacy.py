"""The defaults of runs saved by older versions: a checkpoint's config that
predates a key means the behaviour it was trained with, which need not be
today's default (e.g. ``data.feature_store``: ``'memory'``, not ``'auto'``).

Read by whoever loads or compares a saved config (checkpoints, run folders);
imports nothing."""
from __future__ import annotations

from typing import Any, Dict

#: keys added after checkpoints were first written, with the behaviour those
#: checkpoints were trained with (a config without the key means this value)
LEGACY_DEFAULTS: Dict[str, Dict[str, Any]] = {
    'data': {'feature_store': 'memory'},
    'model': {'structure_mask': False, 'structure_stand_in': False},
    'training': {'structure_dropout': 0.0, 'stand_in_epochs': 10, 'corrupt_side': 'row',
                 'precision': 'fp32', 'cpu_blas': 'torch'},
}


def with_legacy_defaults(saved: Dict[str, Any]) -> Dict[str, Any]:
    """A checkpoint's config with the keys it predates set to the behaviour
    it was trained with (:data:`LEGACY_DEFAULTS`).

    Args:
        saved: the config as the checkpoint keeps it (nested plain dicts); it
            is copied, not changed.
    """
    saved = {k: (dict(v) if isinstance(v, dict) else v) for k, v in saved.items()}
    for section, keys in LEGACY_DEFAULTS.items():
        if isinstance(saved.get(section), dict):
            for key, value in keys.items():
                saved[section].setdefault(key, value)
    return saved
