r"""Hyper-parameter search over a run's config with `Optuna
<https://optuna.org>`_ (``native-pyg tune``, :func:`tune`), in the spirit of
PyKEEN's ``hpo_pipeline``.

A *search space* maps config keys to distributions, in YAML::

    training.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    model.hidden_channels: {type: categorical, choices: [50, 100, 200]}
    training.mu: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}

Each trial trains one run (:func:`~native_pyg.pipeline.build_model`,
:class:`~native_pyg.training.Trainer`) with the variant's overrides, the
sampled values and the budget, reports its validation MRR at every
``eval_every`` epoch to the pruner, and is worth its best validation MRR.
**The test split is never evaluated**: selection is on valid only. The
study lives in SQLite under ``out`` (``study.db``): an interrupted study
resumes, several processes can share one (each returns once every trial
of the study has ended, another process's included), and ``trials`` is the
study's total (asking for more later adds only the missing ones). The best trial's
config is written as ``best.yaml``, which ``native-pyg train --config``
runs as is; ``history.png`` and ``importances.png`` plot the study.
"""
from __future__ import annotations

import math
import os
import os.path as osp
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import yaml

from native_pyg.data.os_errors import os_error_message
from native_pyg.experiments import VARIANTS
from native_pyg.pipeline import build_model, load_data
from native_pyg.config.run_config import RunConfig
from native_pyg.training.checkpoint import write_text_atomically
from native_pyg.training.process import setup_process
from native_pyg.training.runs import RunLock
from native_pyg.training.trackers import check_tracker, make_tracker
from native_pyg.training.trainer import Trainer

#: distribution keys of a search space entry, by type
SPACE_KEYS = {'float': {'type', 'low', 'high', 'log', 'step'},
              'int': {'type', 'low', 'high', 'log', 'step'},
              'categorical': {'type', 'choices'}}

_SHARED = {
    'training.lr': {'type': 'float', 'low': 1e-4, 'high': 1e-2, 'log': True},
    'model.hidden_channels': {'type': 'categorical', 'choices': [50, 100, 200]},
    'model.margin': {'type': 'float', 'low': 2.0, 'high': 12.0},
    'training.num_negatives': {'type': 'categorical', 'choices': [16, 32, 64, 128]},
    'training.adv_temperature': {'type': 'float', 'low': 0.5, 'high': 2.0},
    'training.regul_rate': {'type': 'float', 'low': 1e-6, 'high': 1e-2, 'log': True},
}
_COMAT = {
    'training.mu': {'type': 'float', 'low': 1e-5, 'high': 1e-1, 'log': True},
    'training.noise_dim': {'type': 'categorical', 'choices': [32, 64, 128]},
}

#: the default search space of each variant: CoMAT's weight and noise only
#: where CoMAT is on
DEFAULT_SPACES: Dict[str, Dict[str, dict]] = {
    v: {**_SHARED, **({} if 'training.adversarial=false' in VARIANTS[v][1]
                      or 'model.modalities=[]' in VARIANTS[v][1] else _COMAT)}
    for v in VARIANTS}

#: below this many completed trials, importances.png comes with a word of caution
MIN_TRIALS_FOR_IMPORTANCES = 10

#: how often a finished process looks again at the trials other processes still run
WAIT_SECONDS = 10.0

#: pruners by name (``none``: every trial runs its whole budget)
PRUNERS = ('median', 'halving', 'none')


def check_space(space: Mapping[str, Any], source: str = 'search space') -> Dict[str, dict]:
    """A search space, checked: every key a ``section.key`` of the config,
    every entry a known distribution with its bounds; one-line
    :class:`ValueError` naming the key otherwise."""
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"{source}: expected a mapping of config keys to distributions, "
                         f"e.g. 'training.lr: {{type: float, low: 1e-4, high: 1e-2, log: true}}'")
    known = RunConfig().to_dict()
    out = {}
    for key, entry in space.items():
        section, _, name = str(key).partition('.')
        if section not in ('data', 'model', 'training') or name not in known[section]:
            raise ValueError(f"{source}: {key}: not a config key (section.key, e.g. training.lr)")
        kind = entry.get('type') if isinstance(entry, Mapping) else None
        if kind not in SPACE_KEYS:
            raise ValueError(f"{source}: {key}: type must be one of {', '.join(SPACE_KEYS)}")
        unknown = sorted(set(entry) - SPACE_KEYS[kind])
        if unknown:
            raise ValueError(f"{source}: {key}: unknown field(s) {unknown} for type {kind}")
        if kind == 'categorical':
            if not isinstance(entry.get('choices'), list) or not entry['choices']:
                raise ValueError(f"{source}: {key}: categorical needs a non-empty 'choices' list")
            bad = [c for c in entry['choices']
                   if c is not None and not isinstance(c, (bool, int, float, str))]
            if bad:
                raise ValueError(f"{source}: {key}: categorical choices must be numbers, "
                                 f"strings, true/false or null, got {bad[0]!r}")
        else:
            low, high = entry.get('low'), entry.get('high')
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       and math.isfinite(v) for v in (low, high)) or not low < high:
                raise ValueError(f"{source}: {key}: {kind} needs finite numbers low < high, "
                                 f"got low={low!r}, high={high!r}")
            if entry.get('log') and low <= 0:
                raise ValueError(f"{source}: {key}: a log scale needs low > 0, got {low!r}")
            if kind == 'int' and not all(float(v).is_integer() for v in (low, high)):
                raise ValueError(f"{source}: {key}: int needs whole numbers, got low={low!r}, "
                                 f"high={high!r}")
            step = entry.get('step')
            if step is not None:
                number = isinstance(step, (int, float)) and not isinstance(step, bool)
                if not number or not math.isfinite(step) or step <= 0 or (
                        kind == 'int' and not float(step).is_integer()):
                    raise ValueError(f"{source}: {key}: step must be a positive "
                                     f"{'whole ' if kind == 'int' else ''}number, got {step!r}")
                if entry.get('log') and (kind == 'float' or step != 1):
                    raise ValueError(f"{source}: {key}: a log scale takes no step")
        out[str(key)] = dict(entry)
    return out


def load_space(path: str) -> Dict[str, dict]:
    """The search space of a YAML file (see :func:`check_space`)."""
    from native_pyg.config.yaml_reader import load_yaml
    try:
        return check_space(load_yaml(path), source=path)
    except OSError as e:
        raise ValueError(os_error_message(e, path)) from None


def suggest(trial, space: Mapping[str, dict]) -> List[str]:
    """``section.key=value`` overrides drawn by an Optuna ``trial``."""
    out = []
    for key, e in space.items():
        if e['type'] == 'categorical':
            value = trial.suggest_categorical(key, e['choices'])
        elif e['type'] == 'float':
            value = trial.suggest_float(key, e['low'], e['high'], log=bool(e.get('log')),
                                        step=e.get('step'))
        else:
            value = trial.suggest_int(key, int(e['low']), int(e['high']),
                                      log=bool(e.get('log')), step=int(e.get('step') or 1))
        out.append(f'{key}={yaml.safe_dump(value, default_flow_style=True).strip()}')
    return out


def open_study(out: str, pruner):
    """The Optuna study in ``out/study.db`` (created if new), with heartbeats
    so that a killed trial fails; one line for a file that is not a study."""
    import optuna
    path = osp.join(out, 'study.db')
    if osp.isdir(path):
        raise ValueError(f"{path}: is a directory, not a study database")
    if osp.exists(path) and osp.getsize(path):
        with open(path, 'rb') as f:
            if f.read(16) != b'SQLite format 3\x00':
                raise ValueError(f"{path}: not a study database (not SQLite); move it away "
                                 f"or use a new --out")
    with study_errors(out), warnings.catch_warnings():  # heartbeats are 'experimental'
        warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(  # a killed trial fails once its heartbeat stops
            f"sqlite:///{osp.abspath(path)}", heartbeat_interval=60, grace_period=180)
        return optuna.create_study(study_name='native-pyg', storage=storage,
                                   direction='maximize', pruner=pruner, load_if_exists=True)


@contextmanager
def study_errors(out: str) -> Iterator[None]:
    """The study database's errors (damaged, truncated, a full disk) as one
    :class:`ValueError` naming it."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's and sqlite3's many kinds
        module = type(e).__module__
        if not module.startswith(('sqlalchemy', 'sqlite3')):
            raise
        cause = ' '.join(str(getattr(e, 'orig', None) or e).split())[:200]
        raise ValueError(f"{osp.join(out, 'study.db')}: the study database failed ({cause})"
                         ) from None


def check_resumed_space(study, space: Mapping[str, dict], out: str) -> None:
    """A resumed study must search the space it was started with (Optuna
    refuses a changed distribution in the middle of a trial)."""
    from optuna.distributions import check_distribution_compatibility
    new = distributions(space)
    for trial in study.get_trials(deepcopy=False):
        for key, old in trial.distributions.items():
            if key not in new:
                continue
            try:
                check_distribution_compatibility(old, new[key])
            except ValueError:
                raise ValueError(f"{out}/study.db: {key} was searched as {old}, the space now "
                                 f"says {new[key]}; use the study's space or a new --out"
                                 ) from None


def distributions(space: Mapping[str, dict]) -> Dict[str, Any]:
    """The Optuna distribution of each entry of a checked space."""
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)
    out = {}
    for key, e in space.items():
        if e['type'] == 'categorical':
            out[key] = CategoricalDistribution(e['choices'])
        elif e['type'] == 'float':
            out[key] = FloatDistribution(e['low'], e['high'], log=bool(e.get('log')),
                                         step=e.get('step'))
        else:
            out[key] = IntDistribution(int(e['low']), int(e['high']), log=bool(e.get('log')),
                                       step=int(e.get('step') or 1))
    return out


def _pruner(pruner):
    import optuna
    if not isinstance(pruner, str):
        return pruner  # an optuna pruner instance
    if pruner not in PRUNERS:
        raise ValueError(f"pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    return {'median': lambda: optuna.pruners.MedianPruner(n_startup_trials=3),
            'halving': optuna.pruners.SuccessiveHalvingPruner,
            'none': optuna.pruners.NopPruner}[pruner]()


@dataclass
class TuneResult:
    """What :func:`tune` found: the Optuna ``study``, the best trial's
    ``config`` (also ``out/best.yaml``) and its validation MRR."""
    study: Any
    config: RunConfig
    best_valid_mrr: float
    out: str

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(trials={len(self.study.trials)}, '
                f'best_valid_mrr={self.best_valid_mrr:.4f}, out={self.out!r})')


def tune(dataset: Optional[str] = None, root: Optional[str] = None,
         config: Union[str, RunConfig, None] = None, overrides: Sequence[str] = (),
         out: str = 'tune', trials: int = 20, variant: str = 'native',
         space: Union[str, Mapping[str, Any], None] = None, pruner: Any = 'median',
         seed: int = 0, data=None, progress: bool = False,
         tracker: Optional[str] = None) -> TuneResult:
    r"""Searches the config of ``variant`` on ``dataset`` with Optuna's TPE
    sampler until the study under ``out`` holds ``trials`` finished
    (completed or pruned) trials; see the module docstring.

    Args:
        dataset (str, optional): A dataset name or folder. (default: the config's)
        root (str, optional): Dataset root. (default: the config's)
        config (str or RunConfig, optional): Base config (YAML or object);
            the per-trial budget is its ``training.epochs`` and
            ``training.eval_every``. (default: :obj:`None`, the defaults)
        overrides (list[str], optional): ``--set``-style assignments.
        out (str): Directory of the study (``study.db``, ``best.yaml``,
            plots). (default: ``'tune'``)
        trials (int): Finished trials the study should hold. (default: :obj:`20`)
        variant (str): A variant of :mod:`native_pyg.experiments` (``native``,
            ``native-no-comat``, ``adamf``, ``mean``, ``rotate``...).
            (default: ``'native'``)
        space (str or dict, optional): A search space (YAML file or
            mapping). (default: :data:`DEFAULT_SPACES` of the variant)
        pruner (str or optuna pruner): ``'median'``, ``'halving'``,
            ``'none'`` or an Optuna pruner. (default: ``'median'``)
        seed (int): Seed of the sampler. (default: :obj:`0`)
        data (HeteroData, optional): The graph, instead of loading ``dataset``.
        progress (bool): Progress bars of each trial's training.
        tracker (str, optional): A result tracker per trial
            (:mod:`native_pyg.training.trackers`), under
            ``out/trials/<number>/<tracker>``. (default: :obj:`None`)
    """
    import optuna
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    space = (DEFAULT_SPACES[variant] if space is None else
             load_space(space) if isinstance(space, str) else check_space(space))
    base = (config if isinstance(config, RunConfig) else
            RunConfig.from_yaml(config) if config else RunConfig())
    base = RunConfig.from_dict(base.to_dict()).locate(dataset, root)
    base = base.override([*VARIANTS[variant][1], *overrides,
                          f'training.progress={str(progress).lower()}'])
    if tracker is not None:
        check_tracker(tracker)  # a missing package: now, not after the first trial
    if not base.training.eval_every:
        raise ValueError("training.eval_every must be > 0: trials are selected and pruned on "
                         "validation MRR")
    data = load_data(base) if data is None else data
    os.makedirs(out, exist_ok=True)
    # our one line for a failure, never Optuna's logged traceback of the trial
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    with RunLock(out, wait=True):  # two processes creating one new study: one creates it
        study = open_study(out, _pruner(pruner))
        check_resumed_space(study, space, out)

    def objective(trial) -> float:
        lock.release()  # the trial exists now: the next process may count it and ask
        run = base.override(suggest(trial, space))
        trial.set_user_attr('config', run.to_dict())
        model = build_model(data, run)
        setup_process(run.training, threads=False)  # the command chose the threads
        trainer = Trainer(model, data, run)

        def report(_, rec: Dict[str, Any]) -> None:
            if 'valid_mrr' in rec:
                trial.report(rec['valid_mrr'], rec['epoch'])
                trial.set_user_attr('epochs', rec['epoch'])
                if trial.should_prune():
                    raise optuna.TrialPruned()

        trainer.epoch_callbacks.append(report)
        tracked = None
        if tracker is not None:  # one tracked run per trial
            tracked = make_tracker(tracker, osp.join(out, 'trials', str(trial.number), tracker),
                                   run_name=f'trial-{trial.number}')
            tracked.log_config(run.to_dict())
            trainer.epoch_callbacks.insert(0, tracked)  # before the pruner may stop it
        try:
            trainer.fit()
        finally:
            if tracked is not None:
                tracked.close()
        value = max(r['valid_mrr'] for r in trainer.history if 'valid_mrr' in r)
        print(f"trial {trial.number}: valid MRR {100 * value:.2f} % "
              f"({', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in trial.params.items())})",
              flush=True)
        return value

    others_running_said = False
    while True:  # one trial at a time: counting and asking are one step under the lock
        lock = RunLock(out, wait=True).__enter__()
        others_running = False
        try:
            with study_errors(out), warnings.catch_warnings():
                warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # trials of killed processes
                running = study.get_trials(deepcopy=False,
                                           states=(optuna.trial.TrialState.RUNNING,))
                if len(study.get_trials(deepcopy=False, states=finished)) + len(running) \
                        >= trials:
                    if not running:
                        break
                    # another process's last trials belong to the best: wait for them (a
                    # killed one fails once its heartbeat stops, and is drawn again here)
                    if not others_running_said:
                        print(f"{out}: {len(running)} trial(s) still running in another process; "
                              f"waiting for them before choosing the best (a killed process's "
                              f"trial fails once its heartbeat is 3 minutes old)", flush=True)
                        others_running_said = True
                    others_running = True
                else:
                    # seeded past the trials already there: a resumed study draws new configs
                    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
                    study.optimize(objective, n_trials=1, catch=())
        finally:
            lock.release()  # released already once the trial began
        if others_running:
            time.sleep(WAIT_SECONDS)
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not completed:
        raise ValueError(f"{out}: no trial completed (all pruned or failed); raise --trials or "
                         f"use --pruner none")
    best = study.best_trial
    best_config = RunConfig.from_dict(best.user_attrs['config'])
    write_text_atomically(osp.join(out, 'best.yaml'), (
        f"# best of {len(completed)} completed trials of {out}/study.db: trial "
        f"{best.number}, valid MRR {best.value:.4f} (test never looked at)\n"
        + yaml.safe_dump(best_config.to_dict(), sort_keys=False)))
    _plot(study, out)
    return TuneResult(study, best_config, float(best.value), out)


def _plot(study, out: str) -> None:
    """``history.png`` (valid MRR per trial and the best so far) and
    ``importances.png`` (once two trials completed; fANOVA with a fixed
    seed, named, since Optuna's default evaluator changed between releases)."""
    import optuna
    from optuna.visualization import matplotlib as plots

    def importances(study):
        ax = plots.plot_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        ax.set_title('Hyperparameter importances (fANOVA, seed 0)', loc='left')
        return ax

    with warnings.catch_warnings():
        warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
        figures = [('history.png', plots.plot_optimization_history)]
        completed = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
        if completed >= 2:
            figures.append(('importances.png', importances))
        if 2 <= completed < MIN_TRIALS_FOR_IMPORTANCES:
            print(f"importances.png: from {completed} completed trials only; with fewer than "
                  f"{MIN_TRIALS_FOR_IMPORTANCES} the importances are mostly noise")
        for name, plot in figures:
            try:
                ax = plot(study)
            except (ValueError, RuntimeError) as e:  # e.g. one parameter never varied
                print(f"{name} not drawn: {e}")
                continue
            ax.figure.savefig(osp.join(out, name), dpi=120, bbox_inches='tight')
            import matplotlib.pyplot as plt
            plt.close(ax.figure)
