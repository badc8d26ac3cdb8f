"""Negative sampling, losses, checkpoints, early stopping and the trainer.

A run is built from a config by :mod:`native_pyg.pipeline` (``build_model``,
``load_run``, ``pipeline``), which sits above this package."""
from native_pyg.training.checkpoint import load_checkpoint, save_checkpoint
from native_pyg.config.run_config import DataConfig, ModelConfig, RunConfig, TrainConfig
from native_pyg.training.early_stopping import EarlyStopper
from native_pyg.training.losses import (LOSSES, margin_ranking_loss, self_adversarial_loss,
                                        structural_l2)
from native_pyg.training.negative_sampling import BernoulliNegativeSampler
from native_pyg.training.structure_dropout import StructureDropout
from native_pyg.training.stand_in_fitting import fit_structure_stand_in
from native_pyg.training.process import resolve_device
from native_pyg.training.trainer import NonFiniteLossError, Trainer

__all__ = [
    'BernoulliNegativeSampler', 'StructureDropout', 'fit_structure_stand_in',
    'self_adversarial_loss', 'margin_ranking_loss', 'structural_l2', 'LOSSES',
    'save_checkpoint', 'load_checkpoint', 'DataConfig', 'ModelConfig', 'TrainConfig', 'RunConfig',
    'EarlyStopper', 'Trainer', 'NonFiniteLossError', 'resolve_device',
]
