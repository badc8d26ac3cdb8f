"""What a trainer actually trains, said in one line and recorded in
``metrics.json``: nothing downgrades silently (a NativE config on data
without features is a structure-only model, and says so)."""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, Mapping

import torch


def model_name(model) -> str:
    """``'NativE'``, or the scorer's name with ``(structure only)``."""
    if model.feature_modalities:
        return 'NativE'
    return f'{type(model.scorer).__name__} (structure only)'


def trained_setup(trainer) -> Dict[str, Any]:
    """What a trainer actually trains: the model's name (``NativE``, or its
    scorer with ``structure only``), its modalities, fusion, CoMAT on or off
    and the CPU threads."""
    model = trainer.model
    mods = list(model.feature_modalities)
    return {'model': model_name(model),
            'modalities': mods,
            'fusion': model.fusion_name,
            'comat': trainer.generator is not None,
            'threads': torch.get_num_threads()}


def describe_setup(setup: Mapping[str, Any], dataset: str) -> str:
    """:func:`trained_setup` as the one line a run starts with."""
    mods = ', '.join(setup['modalities']) or 'none'
    return (f"training {setup['model']} on {osp.basename(str(dataset))}: modalities {mods}, "
            f"fusion {setup['fusion']}, CoMAT {'on' if setup['comat'] else 'off'}, "
            f"{setup['threads']} CPU thread{'s' if setup['threads'] != 1 else ''}")
