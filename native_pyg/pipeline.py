r"""The one way to build, train and restore a run.

:func:`pipeline` composes a run from small steps, in the spirit of PyKEEN's
``pipeline()``: its config (:class:`~native_pyg.training.RunConfig`), its
data (:func:`load_data`), its model (:func:`build_model`), training
(:class:`~native_pyg.training.Trainer`) and evaluation on valid and test.
:func:`load_run` restores what a checkpoint was trained on. The command
line (``native-pyg train`` / ``evaluate`` / ``predict``) and the
experiments are built from the same functions, so a run built here and one
built there are the same run::

    from native_pyg.pipeline import pipeline, load_run

    result = pipeline('synthetic', epochs=40, hidden_channels=32, out='runs/x')
    print(result.test['both']['mrr'])
    run = load_run('runs/x/model.pt')  # the same model on the same data
"""
from __future__ import annotations

import dataclasses
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from torch_geometric.data import HeteroData

from native_pyg.builders import build_model, load_data
from native_pyg.data.schema import fingerprint, fingerprint_differences
from native_pyg.nn import NativE
from native_pyg.training.checkpoint import (load_checkpoint, save_checkpoint,
                                           write_text_atomically)
from native_pyg.config.legacy import with_legacy_defaults
from native_pyg.config.run_config import DataConfig, ModelConfig, RunConfig, TrainConfig
from native_pyg.training.runs import REPLACED, RunDirectoryError, run_folder
from native_pyg.training.trained_setup import trained_setup
from native_pyg.training.process import resolve_device, setup_process
from native_pyg.training.trainer import Trainer
from native_pyg.training.validation import evaluate_splits

#: config section of every key a :func:`pipeline` keyword may name (no key
#: is in two sections, so a bare key is never ambiguous)
SECTION_OF_KEY: Dict[str, str] = {
    f.name: section for section, cls in (('data', DataConfig), ('model', ModelConfig),
                                         ('training', TrainConfig))
    for f in dataclasses.fields(cls)}


def keyword_overrides(kwargs: Mapping[str, Any]) -> List[str]:
    """``--set``-style overrides of :func:`pipeline` keywords: each keyword
    names a key of one config section, e.g. ``epochs=40`` ->
    ``'training.epochs=40'``, ``modalities=['image']`` ->
    ``'model.modalities=["image"]'``."""
    sets = []
    for key, value in kwargs.items():
        if key not in SECTION_OF_KEY:
            raise ValueError(f"pipeline(): unknown keyword {key!r}; expected a key of the data, "
                             f"model or training config, e.g. epochs, lr, hidden_channels")
        # JSON is YAML, which --set values are parsed as
        sets.append(f'{SECTION_OF_KEY[key]}.{key}={json.dumps(value)}')
    return sets


def final_metrics(trainer: Trainer, progress: bool = False) -> Dict[str, Any]:
    """What ``metrics.json`` of a run holds: filtered metrics of the
    trainer's (selected) model on valid and test, the best and the last
    epoch, the epoch of the weights, the number of processes and what
    trained (:func:`trained_setup`)."""
    trained = trained_setup(trainer)
    weights_epoch = trainer.state_dict(best_only=True)['weights_epoch']
    valid, test = evaluate_splits(trainer, ('valid', 'test'), progress).values()
    return {'trained': trained, 'valid': valid, 'test': test,
            'best_epoch': trainer.best_epoch, 'epochs': trainer.epoch,
            'weights_epoch': weights_epoch, 'world_size': trainer.dist.world_size}


# --- pipeline ----------------------------------------------------------------------
@dataclass(repr=False)
class PipelineResult:
    """What :func:`pipeline` built and measured.

    Args:
        run (RunConfig): The config of the run.
        data (HeteroData): Its graph.
        model (NativE): The trained model (the best parameters on valid
            when validation ran).
        trainer (Trainer): The trainer, e.g. to :meth:`~Trainer.fit` on.
        history (list[dict]): One record per epoch.
        metrics (dict, optional): :func:`final_metrics`.
            (default: :obj:`None`, as with ``evaluate=False``)
    """
    run: RunConfig
    data: HeteroData
    model: NativE
    trainer: Trainer
    history: List[Dict[str, Any]]
    metrics: Optional[Dict[str, Any]] = None

    @property
    def valid(self) -> Optional[Dict[str, Any]]:
        """Filtered metrics on valid."""
        return self.metrics['valid'] if self.metrics else None

    @property
    def test(self) -> Optional[Dict[str, Any]]:
        """Filtered metrics on test."""
        return self.metrics['test'] if self.metrics else None

    def save(self, out_dir: str) -> None:
        """Writes ``model.pt`` (restorable by :func:`load_run` and the
        ``evaluate`` / ``predict`` commands) and, when evaluated,
        ``metrics.json`` to ``out_dir``."""
        os.makedirs(out_dir, exist_ok=True)
        save_checkpoint(self.trainer.state_dict(best_only=True), osp.join(out_dir, 'model.pt'))
        if self.metrics is not None:
            write_text_atomically(osp.join(out_dir, 'metrics.json'),
                                  json.dumps(self.metrics, indent=2))

    def __repr__(self) -> str:
        test = f', test_mrr={self.test["both"]["mrr"]:.4f}' if self.metrics else ''
        return (f'{self.__class__.__name__}(dataset={self.run.dataset!r}, '
                f'epochs={self.trainer.epoch}, best_epoch={self.trainer.best_epoch}{test})')


def pipeline(dataset: Optional[str] = None, root: Optional[str] = None,
             config: Union[str, Mapping[str, Any], RunConfig, None] = None,
             overrides: Sequence[str] = (), out: Optional[str] = None,
             data: Optional[HeteroData] = None, evaluate: bool = True,
             resume: bool = False, overwrite: bool = False, **kwargs: Any) -> PipelineResult:
    r"""Builds, trains and evaluates one run, as ``native-pyg train`` does:
    config, then data (:func:`load_data`), model (:func:`build_model`),
    training (:class:`~native_pyg.training.Trainer`) and filtered metrics on
    valid and test.

    Every further keyword is a key of one config section (``data``,
    ``model`` or ``training``; no key is in two) and is applied after
    ``overrides`` as ``section.key=value``: ``epochs=40`` is
    ``training.epochs=40``, ``hidden_channels=32`` is
    ``model.hidden_channels=32``, ``modalities=['image']`` is
    ``model.modalities=["image"]``.

    .. code-block:: python

        result = pipeline('synthetic', epochs=40, lr=1e-2, hidden_channels=32)
        result.test['both']['mrr']

    Args:
        dataset (str, optional): ``'synthetic'``, a WildKGC name or the
            path of a folder holding an MMKG (see
            :class:`~native_pyg.datasets.folder.FolderMMKG`).
            (default: the config's, else ``'synthetic'``)
        root (str, optional): Dataset root. (default: the config's)
        config (str or dict or RunConfig, optional): A YAML file, a mapping
            of sections or a config. (default: :obj:`None`)
        overrides (list[str], optional): ``--set``-style assignments, e.g.
            ``['training.lr=1e-3']``. (default: :obj:`()`)
        out (str, optional): A run directory for checkpoints, the
            history, curves and ``metrics.json``; one that holds a run
            already is refused unless ``resume`` or ``overwrite`` says what
            to do with it. (default: :obj:`None`)
        data (HeteroData, optional): Train on this graph instead of loading
            ``dataset`` (checkpoints still record ``dataset`` and ``root``).
            (default: :obj:`None`)
        evaluate (bool, optional): Measure valid and test after training.
            (default: :obj:`True`)
        resume (bool, optional): Continue the run in ``out`` from its
            ``last.pt``, as ``native-pyg train --resume``. (default: :obj:`False`)
        overwrite (bool, optional): Replace the run in ``out``; it is kept
            until the new run writes its first checkpoint, as ``native-pyg
            train --overwrite``. (default: :obj:`False`)
        **kwargs: Config keys, see above.
    """
    run = _handle_config(dataset, root, config, overrides, kwargs)
    data = _handle_data(run, data)
    model = _handle_model(data, run)
    if out is None:
        if resume or overwrite:
            raise ValueError("resume and overwrite need a run directory (out=...)")
        trainer = _handle_training(model, data, run, None)
        return _handle_evaluation(trainer, evaluate)
    with run_folder(out, resume, overwrite):  # one process per run directory, as 'native-pyg train'
        last = osp.join(out, 'last.pt')
        if resume and not osp.exists(last):
            raise RunDirectoryError(f"resume=True: no checkpoint at {last}")
        trainer = _handle_training(model, data, run, out, last if resume else None)
        result = _handle_evaluation(trainer, evaluate)
        result.save(out)
    return result


def _handle_config(dataset: Optional[str], root: Optional[str],
                   config: Union[str, Mapping[str, Any], RunConfig, None],
                   overrides: Sequence[str], kwargs: Mapping[str, Any]) -> RunConfig:
    if config is None:
        run = RunConfig()
    elif isinstance(config, RunConfig):
        run = RunConfig.from_dict(config.to_dict())  # a copy: the caller's stays as it is
    elif isinstance(config, Mapping):
        run = RunConfig.from_dict(dict(config))
    else:
        run = RunConfig.from_yaml(os.fspath(config))
    run.locate(dataset, root)
    sets = [*overrides, *keyword_overrides(kwargs)]
    return run.override(sets) if sets else run


def _handle_data(run: RunConfig, data: Optional[HeteroData]) -> HeteroData:
    return load_data(run) if data is None else data


def _handle_model(data: HeteroData, run: RunConfig) -> NativE:
    return build_model(data, run)


def _handle_training(model: NativE, data: HeteroData, run: RunConfig,
                     out: Optional[str], resume_from: Optional[str] = None) -> Trainer:
    # threads where asked for (else the caller's), determinism, the seed
    setup_process(run.training, threads=run.training.threads is not None)
    trainer = Trainer(model, data, run, out_dir=out)
    if resume_from is not None:
        trainer.resume(resume_from)
    trainer.fit()
    return trainer


def _handle_evaluation(trainer: Trainer, evaluate: bool) -> PipelineResult:
    metrics = final_metrics(trainer, trainer.cfg.progress) if evaluate else None
    # trainer.run records the modalities used, not "all of the dataset's"
    return PipelineResult(trainer.run, trainer.data, trainer.model, trainer, trainer.history,
                          metrics)


# --- restoring -------------------------------------------------------------------
@dataclass(repr=False)
class LoadedRun:
    """A run restored from its checkpoint by :func:`load_run`.

    Args:
        run (RunConfig): The config it was trained with (``root`` as found).
        data (HeteroData): The data it was trained on.
        model (NativE): The model with the checkpoint's weights.
        state (dict): The checkpoint itself.
    """
    run: RunConfig
    data: HeteroData
    model: NativE
    state: Dict[str, Any]

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(dataset={self.run.dataset!r}, "
                f"weights_epoch={self.state.get('weights_epoch')}, model={self.model!r})")


def load_run(checkpoint: str, root: Optional[str] = None, device: Optional[str] = None,
             data: Optional[HeteroData] = None,
             feature_store: Optional[str] = None) -> LoadedRun:
    """Restores a run from a checkpoint (``model.pt``, ``best.pt`` or
    ``last.pt``): its config, the data it was trained on (checked against
    the recorded fingerprint) and its model.

    Args:
        checkpoint (str): The checkpoint file.
        root (str, optional): Look for the dataset here instead of the
            recorded root (e.g. after moving it). (default: :obj:`None`)
        device (str, optional): Move the model to ``'auto'``, ``'cpu'``,
            ``'cuda'`` or ``'cuda:N'``. (default: :obj:`None`: the CPU)
        data (HeteroData, optional): The graph, for a run trained on one
            given to :func:`pipeline` rather than loaded by its config; it
            must be the graph the model was trained on (its fingerprint is
            checked). (default: :obj:`None`: :func:`load_data`)
        feature_store (str, optional): The place of the converted feature
            store the run was trained with, when it has moved.
            (default: :obj:`None`: the recorded one)

    Raises:
        ValueError: One line naming the file: not a checkpoint, the data
            root does not exist, the data differs from what the model was
            trained on, or the weights do not fit the model.
    """
    try:  # mapped: the model takes the file's tensors as its own, one copy of the table
        state = load_checkpoint(checkpoint, mmap=True)
    except (FileNotFoundError, RuntimeError) as e:
        aside = osp.join(osp.dirname(osp.abspath(checkpoint)), REPLACED)
        if isinstance(e, FileNotFoundError) and osp.isdir(aside):
            raise ValueError(f"{checkpoint}: not found, but an interrupted --overwrite set the "
                             f"previous run aside in {aside}; rerun that train command (it "
                             f"puts it back until the new run has a checkpoint), or move the "
                             f"files back") from None
        raise ValueError(str(e)) from None
    if not isinstance(state, dict) or not isinstance(state.get('config'), dict) \
            or not isinstance(state.get('model'), dict):
        raise ValueError(f"{checkpoint}: not a native_pyg checkpoint (no 'config' and 'model'); "
                         f"expected model.pt, best.pt or last.pt written by 'native-pyg train'")
    shards = state.get('table_shards')
    if shards is not None:
        raise ValueError(f"{checkpoint}: its entity table is sharded over "
                         f"{shards.get('world_size')} processes; consolidate it first: "
                         f"native-pyg export --checkpoint {checkpoint} --out model.pt")
    run = RunConfig.from_dict(with_legacy_defaults(state['config']), source=checkpoint)
    if state.get('exported_from'):  # a sharded run's table, joined: one process holds it
        run.model.table = 'dense'
    if feature_store is not None:  # the run's converted store, moved since
        run.data.feature_store = osp.abspath(osp.expanduser(feature_store))
    if root is not None:
        run.locate(root=root)
    elif data is None and run.root is not None and not osp.isdir(run.root):
        raise ValueError(f"{checkpoint}: trained on {run.dataset} at {run.root}, which does not "
                         f"exist here; give --root DIR where the same dataset lies")
    where = 'the given graph' if data is not None else \
        f"the {run.dataset} data at {run.root or '(generated)'}"
    data = load_data(run) if data is None else data
    differs = fingerprint_differences(state.get('data') or {}, fingerprint(data))
    if state.get('data') and differs:
        raise ValueError(f"{checkpoint}: {where} differs from the data this model was trained "
                         f"on ({differs})")
    model = build_model(data, run)  # its own errors (e.g. a damaged feature store) as they are
    store = model.inputs.store
    recorded = state.get('feature_store')
    if recorded and store is not None and store.identity() != recorded:
        raise ValueError(f"{checkpoint}: the feature store {store.root} changed since the model "
                         f"was trained (its features.json or files differ); give the store it "
                         f"was trained with (--feature-store PATH)")
    try:  # assigned, not copied: the freshly initialised parameters are freed
        model.load_state_dict(state['model'], assign=True)
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"{checkpoint}: its weights do not fit the model its config builds on "
                         f"this data ({first})") from None
    if device is not None:
        model = model.to(resolve_device(device))
    return LoadedRun(run, data, model, state)
