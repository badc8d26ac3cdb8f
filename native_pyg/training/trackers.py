r"""Result trackers: a run's config, per-epoch losses, validation metrics,
seconds per epoch and ReDAF's modality weights per relation, written to CSV,
TensorBoard, MLflow or Weights & Biases, like PyKEEN's result trackers.

A tracker is a :class:`~native_pyg.training.Trainer` epoch callback::

    tracker = make_tracker('csv', 'runs/x/tracking')
    tracker.log_config(run.to_dict())
    trainer.epoch_callbacks.append(tracker)
    trainer.fit()
    tracker.close()

At every validation epoch it also logs the mean modality weights
:math:`w_m` of the validation heads of each relation
(``weights/<relation>/<modality>``), so that one sees what ReDAF learns per
relation while it trains.
"""
from __future__ import annotations

import csv
import io
import json
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch

from native_pyg.nn.modes import evaluating
from native_pyg.training.checkpoint import write_text_atomically
from native_pyg.config.run_config import flatten

#: tracker names (``--tracker``)
TRACKERS = ('csv', 'tensorboard', 'mlflow', 'wandb')

#: what each tracker needs installed
_PACKAGES = {'tensorboard': 'tensorboard', 'mlflow': 'mlflow-skinny', 'wandb': 'wandb'}


@torch.no_grad()
def modality_weights_by_relation(model, triples: torch.Tensor,
                                 relation_names: Optional[List[str]] = None) -> Dict[str, float]:
    r"""``{'weights/<relation>/<modality>': mean w_m}`` over the heads of
    ``triples`` ``[T, 3]`` of each relation (empty for a model without
    fusion)."""
    if not model.feature_modalities or triples.numel() == 0:
        return {}
    out = {}
    with evaluating(model):
        for r in torch.unique(triples[:, 1]).tolist():
            heads = triples[triples[:, 1] == r, 0].to(model.device)
            weights = model.modality_weights(heads, r).float().mean(0).tolist()
            name = relation_names[r] if relation_names else str(r)
            for modality, w in zip(model.modality_names, weights):
                out[f'weights/{name}/{modality}'] = w
    return out


@torch.no_grad()
def modality_weights_by_presence(model, triples: torch.Tensor) -> Dict[str, Dict[str, Any]]:
    r"""Mean ReDAF weights :math:`w_m` of the entities of ``triples`` ``[T, 3]``
    (heads and tails, each in the context of its triple's relation), split by
    whether the entity has each feature modality: ``{'<modality> present' |
    '<modality> missing': {'count': n, '<column>': mean w, ...}}`` with the
    columns of :attr:`~native_pyg.nn.NativE.modality_names` (empty for a
    model without fusion). This is what tells whether ReDAF leans on
    structure where features are missing."""
    if not model.feature_modalities or triples.numel() == 0:
        return {}
    ent = torch.cat([triples[:, 0], triples[:, 2]]).to(model.device)
    rel = torch.cat([triples[:, 1], triples[:, 1]]).to(model.device)
    with evaluating(model):
        weights = torch.cat([model.modality_weights(e, r).float()
                             for e, r in zip(ent.split(4096), rel.split(4096))])
    out: Dict[str, Dict[str, Any]] = {}
    for modality in model.modality_names[1:]:
        # the masks of these entities only (a disk store is not read for its rows)
        has = model.inputs.mask(modality, ent).to(model.device)
        for label, rows in ((f'{modality} present', has), (f'{modality} missing', ~has)):
            if rows.any():
                mean = weights[rows].mean(0).tolist()
                out[label] = {'count': int(rows.sum()),
                              **{m: round(w, 4) for m, w in zip(model.modality_names, mean)}}
    return out


class Tracker:
    r"""Base of the trackers: :meth:`log_config` once, :meth:`log_metrics`
    per epoch (called as a trainer epoch callback), :meth:`close` at the end."""

    def log_config(self, config: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __call__(self, trainer, record: Mapping[str, Any]) -> None:
        metrics = {k: float(v) for k, v in record.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != 'epoch'}
        if 'valid_mrr' in record:  # what ReDAF weighs per relation, at validation epochs
            from native_pyg.data.schema import split_triples
            metrics.update(modality_weights_by_relation(
                trainer.model, split_triples(trainer.data, 'valid'),
                getattr(trainer.data, 'relation_names', None)))
        self.log_metrics(metrics, int(record['epoch']))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'


class CSVTracker(Tracker):
    """``DIR/config.json`` and ``DIR/metrics.csv`` (one row per epoch, a
    column per metric; rewritten as new metrics appear)."""

    def __init__(self, directory: str):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.rows: List[Dict[str, float]] = []
        path = osp.join(directory, 'metrics.csv')
        if osp.exists(path):  # a resumed run continues its table
            with open(path, newline='') as f:
                self.rows = [{k: float(v) for k, v in row.items() if v != ''}
                             for row in csv.DictReader(f)]

    def log_config(self, config: Mapping[str, Any]) -> None:
        with open(osp.join(self.directory, 'config.json'), 'w') as f:
            json.dump(dict(config), f, indent=2)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.rows = [row for row in self.rows if row['epoch'] < step]  # after a resume
        self.rows.append({'epoch': step, **metrics})
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        text = io.StringIO(newline='')
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomically(osp.join(self.directory, 'metrics.csv'), text.getvalue())

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.directory!r})'


class TensorBoardTracker(Tracker):
    """Scalars and the config (as text) for TensorBoard under ``DIR``."""

    def __init__(self, directory: str):
        from torch.utils.tensorboard import SummaryWriter
        self.directory, self.writer = directory, SummaryWriter(log_dir=directory)

    def log_config(self, config: Mapping[str, Any]) -> None:
        import yaml
        self.writer.add_text('config', '```\n' + yaml.safe_dump(dict(config)) + '```')

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowTracker(Tracker):
    """An MLflow run (``MLFLOW_TRACKING_URI``, else a file store in ``DIR``)."""

    def __init__(self, directory: str, run_name: Optional[str] = None):
        import mlflow
        if not os.environ.get('MLFLOW_TRACKING_URI'):
            mlflow.set_tracking_uri('file://' + osp.abspath(directory))
        self.mlflow = mlflow
        self.run = mlflow.start_run(run_name=run_name)

    def log_config(self, config: Mapping[str, Any]) -> None:
        self.mlflow.log_params({k: str(v)[:500] for k, v in flatten(config).items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.mlflow.log_metrics({k.replace('@', '_at_'): v for k, v in metrics.items()},
                                step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class WandbTracker(Tracker):
    """A Weights & Biases run, offline when no API key is configured (the
    run is kept under ``DIR`` for ``wandb sync``)."""

    def __init__(self, directory: str, run_name: Optional[str] = None):
        import wandb
        mode = os.environ.get('WANDB_MODE') or ('online' if os.environ.get('WANDB_API_KEY')
                                                else 'offline')
        os.makedirs(directory, exist_ok=True)
        self.run = wandb.init(project='native-pyg', name=run_name, dir=directory, mode=mode)

    def log_config(self, config: Mapping[str, Any]) -> None:
        self.run.config.update(dict(config), allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


def check_tracker(name: str) -> None:
    """One-line :class:`ValueError` unless ``name`` is a tracker whose
    package is installed (checked before a long run starts)."""
    import importlib.util
    if name not in TRACKERS:
        raise ValueError(f"unknown tracker {name!r}; expected one of {', '.join(TRACKERS)}")
    if name in _PACKAGES and importlib.util.find_spec(name) is None:
        raise ValueError(f"the {name} tracker needs {_PACKAGES[name]}: "
                         f"pip install {_PACKAGES[name]}")


def make_tracker(name: str, directory: str, run_name: Optional[str] = None) -> Tracker:
    """The tracker ``name`` (see :data:`TRACKERS`) writing under ``directory``.

    Raises:
        ValueError: An unknown name, or its package is not installed (one
            line with the ``pip install`` command).
    """
    check_tracker(name)
    classes = {'csv': CSVTracker, 'tensorboard': TensorBoardTracker,
               'mlflow': MLflowTracker, 'wandb': WandbTracker}
    try:
        if name in ('mlflow', 'wandb'):
            return classes[name](directory, run_name)
        return classes[name](directory)
    except ImportError:
        raise ValueError(f"the {name} tracker needs {_PACKAGES[name]}: "
                         f"pip install {_PACKAGES[name]}") from None


def start_trackers(names: Sequence[str], directory: str, config: Mapping[str, Any],
                   run_name: Optional[str] = None) -> List[Tracker]:
    """The trackers ``names``, each writing under ``directory/<name>``, each
    with the run's ``config`` logged (:func:`make_tracker`'s errors)."""
    trackers = []
    for name in names:
        tracker = make_tracker(name, os.path.join(directory, name), run_name=run_name)
        tracker.log_config(config)
        trackers.append(tracker)
    return trackers


def epoch_line(rec: Dict[str, Any], target: int) -> str:
    """The one line a trainer prints for an epoch's record ``rec``."""
    line = f"epoch {rec['epoch']}/{target}  loss {rec['loss']:.4f}"
    if 'valid_mrr' in rec:
        line += f"  valid MRR {100 * rec['valid_mrr']:.2f} %"
    return line + f"  {rec['seconds']:.1f} s  {rec['triples_per_s']:,.0f} triples/s"
