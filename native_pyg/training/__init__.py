"""Negative sampling, losses, checkpoints and the trainer."""
from native_pyg.training.checkpoint import load_checkpoint, save_checkpoint
from native_pyg.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from native_pyg.training.losses import LOSSES, margin_ranking_loss, self_adversarial_loss
from native_pyg.training.negative_sampling import BernoulliNegativeSampler
from native_pyg.training.structure_dropout import StructureDropout
from native_pyg.training.structure_stand_in import fit_structure_stand_in
from native_pyg.training.trainer import NonFiniteLossError, Trainer, build_model, resolve_device

__all__ = [
    'BernoulliNegativeSampler', 'StructureDropout', 'fit_structure_stand_in',
    'self_adversarial_loss', 'margin_ranking_loss', 'LOSSES',
    'save_checkpoint', 'load_checkpoint', 'DataConfig', 'ModelConfig', 'TrainConfig', 'RunConfig',
    'Trainer', 'NonFiniteLossError', 'build_model', 'resolve_device',
]
