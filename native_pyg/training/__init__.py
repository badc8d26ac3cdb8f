"""The trainer and what its loop uses, each in its module: batching and
negative sampling, losses, optimisers and their state, the step's graph,
best weights, early stopping, validation, trackers, run folders and
checkpoints, structure dropout, the stand-in fit, ``torch.distributed``
helpers, CPU threads, and what a run sets for the whole process
(:func:`setup_process`, called once before a :class:`Trainer` is built).

A run is built from a config by :mod:`native_pyg.pipeline` (``build_model``,
``load_run``, ``pipeline``), which sits above this package.

May import: :mod:`native_pyg.kernels`, :mod:`native_pyg.data`,
:mod:`native_pyg.loader`, :mod:`native_pyg.nn`, :mod:`native_pyg.datasets`,
:mod:`native_pyg.config`, :mod:`native_pyg.evaluation`."""
from native_pyg.training.checkpoint import load_checkpoint, save_checkpoint
from native_pyg.config.run_config import DataConfig, ModelConfig, RunConfig, TrainConfig
from native_pyg.training.early_stopping import EarlyStopper
from native_pyg.training.losses import (LOSSES, margin_ranking_loss, self_adversarial_loss,
                                        structural_l2)
from native_pyg.training.negative_sampling import BernoulliNegativeSampler
from native_pyg.training.structure_dropout import StructureDropout
from native_pyg.training.stand_in_fitting import fit_structure_stand_in
from native_pyg.training.process import resolve_device, setup_process
from native_pyg.training.trainer import NonFiniteLossError, Trainer

__all__ = [
    'BernoulliNegativeSampler', 'StructureDropout', 'fit_structure_stand_in',
    'self_adversarial_loss', 'margin_ranking_loss', 'structural_l2', 'LOSSES',
    'save_checkpoint', 'load_checkpoint', 'DataConfig', 'ModelConfig', 'TrainConfig', 'RunConfig',
    'EarlyStopper', 'Trainer', 'NonFiniteLossError', 'resolve_device', 'setup_process',
]
