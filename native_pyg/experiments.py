r"""The paper's experiments, one command each: a grid of cells (variant x
setting x seed) trained at one budget on shared data and a shared evaluator,
reported as mean ± std over seeds in a Markdown table, a JSON file and a PNG.

* ``main``: structure-only RotatE and TransE, mean fusion, adaptive fusion
  without relation temperature (AdaMF-style), NativE without CoMAT, NativE,
  and NativE on a 2-layer R-GCN structural encoder;
* ``missing``: entity- and modality-level missing features at rates 0.2,
  0.4, 0.6, 0.8 (:class:`~native_pyg.data.EntityMissing`,
  :class:`~native_pyg.data.ModalityMissing`) for NativE, NativE without
  CoMAT and mean fusion;
* ``generality``: each of RotatE, TransE, DistMult, ComplEx with and without
  CoMAT;
* ``ablation``: NativE, without relation temperature, without CoMAT, mean
  fusion, and the authors' random missing-feature mode;
* ``efficiency``: the ``main`` variants' seconds per epoch, evaluation
  seconds and memory;
* ``unseen``: entities without training triples, NativE (no CoMAT) using
  their untrained structure (the paper), with it masked, and masked plus
  structure dropout 0.1 / 0.3, and masked with a generated stand-in
  structure; tables split every MRR into triples of seen entities and
  triples touching an unseen one.

Every finished cell is written to ``OUT/cells/<cell>.json`` at once, so a
failed or interrupted command, rerun, skips them. Run them with the
``experiment`` command (``native-pyg experiment`` or
``python -m native_pyg experiment``)::

    native-pyg experiment main --dataset MKG-Y --root DIR --text-features names \
        --out runs/main --seeds 0,1,2 --epochs 100

:func:`check_request` and :func:`check_budget` are the checks of a request
that fail before any data is loaded or cell trained.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import os.path as osp
import resource
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:  # the CLI reads the experiment names without loading PyG
    from torch_geometric.data import HeteroData

#: variant -> (what it is, config overrides)
VARIANTS: Dict[str, Tuple[str, List[str]]] = {
    'rotate': ('RotatE, structure only', ['model.modalities=[]', 'model.scorer=rotate']),
    'transe': ('TransE, structure only', ['model.modalities=[]', 'model.scorer=transe']),
    'mean': ('mean fusion, no CoMAT', ['model.fusion=mean', 'training.adversarial=false']),
    'adamf': ('adaptive fusion without relation temperature, no CoMAT',
              ['model.relation_temperature=false', 'training.adversarial=false']),
    'native-no-comat': ('NativE without CoMAT', ['training.adversarial=false']),
    'native': ('NativE (ReDAF + CoMAT)', []),
    'native-rgcn': ('NativE on a 2-layer R-GCN encoder',
                    ['model.encoder=rgcn', 'model.num_bases=4']),
    'no-temperature': ('NativE without relation temperature',
                       ['model.relation_temperature=false']),
    'random-missing': ("NativE, the authors' random stand-ins for missing features",
                       ['model.missing=random']),
}
VARIANTS.update({
    'structure-unmasked': ("NativE without CoMAT, unseen entities' untrained structure used "
                           "(the paper)", ['training.adversarial=false',
                                           'model.structure_mask=false']),
    'structure-masked': ("NativE without CoMAT, unseen entities' structure masked",
                         ['training.adversarial=false', 'model.structure_mask=true']),
})
VARIANTS['structure-stand-in'] = (
    "NativE without CoMAT, unseen entities' structure generated from their features",
    ['training.adversarial=false', 'model.structure_mask=true', 'model.structure_stand_in=true'])
for _p in (0.1, 0.3):
    VARIANTS[f'structure-dropout-{_p}'] = (
        f"NativE without CoMAT, structure masked, structure dropout {_p}",
        ['training.adversarial=false', 'model.structure_mask=true',
         f'training.structure_dropout={_p}'])
for _scorer in ('rotate', 'transe', 'distmult', 'complex'):
    VARIANTS[f'{_scorer}+comat'] = (f'NativE with {_scorer}, CoMAT on',
                                    [f'model.scorer={_scorer}'])
    VARIANTS[f'{_scorer}-no-comat'] = (f'NativE with {_scorer}, CoMAT off',
                                       [f'model.scorer={_scorer}', 'training.adversarial=false'])

MAIN = ['rotate', 'transe', 'mean', 'adamf', 'native-no-comat', 'native', 'native-rgcn']
RATES = (0.2, 0.4, 0.6, 0.8)


def experiment_grid(name: str) -> List[Tuple[str, str]]:
    """``(variant, setting)`` pairs of an experiment; setting ``'full'`` or
    ``'entity-0.4'`` / ``'modality-0.6'``."""
    if name in ('main', 'efficiency'):
        return [(v, 'full') for v in MAIN]
    if name == 'missing':
        return [(v, f'{kind}-{rate}') for kind in ('entity', 'modality') for rate in RATES
                for v in ('native', 'native-no-comat', 'mean')]
    if name == 'generality':
        return [(f'{s}{c}', 'full') for s in ('rotate', 'transe', 'distmult', 'complex')
                for c in ('+comat', '-no-comat')]
    if name == 'unseen':
        return [(v, 'full') for v in ('structure-unmasked', 'structure-masked',
                                      'structure-dropout-0.1', 'structure-dropout-0.3',
                                      'structure-stand-in')]
    if name == 'ablation':
        return [(v, 'full') for v in ('native', 'no-temperature', 'native-no-comat', 'mean',
                                      'random-missing')]
    raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")


EXPERIMENTS = ('main', 'missing', 'generality', 'ablation', 'efficiency', 'unseen')


#: each field of :class:`Budget` and the config key it sets
BUDGET_KEYS = {'epochs': 'training.epochs', 'hidden_channels': 'model.hidden_channels',
               'num_negatives': 'training.num_negatives', 'lr': 'training.lr',
               'batch_size': 'training.batch_size', 'eval_every': 'training.eval_every',
               'margin': 'model.margin'}


@dataclass
class Budget:
    """What every cell of an experiment trains with."""
    epochs: int = 100
    hidden_channels: int = 100
    num_negatives: int = 32
    lr: float = 1e-3
    batch_size: int = 1024
    eval_every: int = 25
    margin: float = 4.0

    def overrides(self) -> List[str]:
        return [f'{key}={getattr(self, name)}' for name, key in BUDGET_KEYS.items()]

    @classmethod
    def resolve(cls, flags: Dict[str, Any], config, given) -> 'Budget':
        """The budget of ``flags`` (``{field: value or None}``), else of
        ``config`` for the keys the user's config or ``--set`` gave
        (``given``, ``section.key`` names), else the built-in default."""
        values = {}
        for name, key in BUDGET_KEYS.items():
            section, field = key.split('.')
            if flags.get(name) is not None:
                values[name] = flags[name]
            elif key in given:
                values[name] = getattr(getattr(config, section), field)
        return cls(**values)


def setting_data(data: HeteroData, setting: str, seed: int) -> HeteroData:
    """The graph of a setting: ``'full'`` (``data`` itself), or
    ``'entity-<rate>'`` / ``'modality-<rate>'`` missing features, drawn with
    ``seed``."""
    from native_pyg.data import EntityMissing, ModalityMissing
    if setting == 'full':
        return data
    kind, rate = setting.rsplit('-', 1)
    transform = EntityMissing if kind == 'entity' else ModalityMissing
    return transform(float(rate), seed=seed)(data)


def _cell_name(variant: str, setting: str, seed: int) -> str:
    return f'{variant}__{setting}__seed{seed}'


def run_cell(data: HeteroData, base, variant: str, setting: str, seed: int, evaluators,
             progress: bool = False) -> Dict[str, Any]:
    """Trains and evaluates one cell; returns its record."""
    from native_pyg.pipeline import build_model
    from native_pyg.training import Trainer
    from native_pyg.training.process import setup_process
    run = base.override([*VARIANTS[variant][1], f'training.seed={seed}',
                         f'training.progress={str(progress).lower()}'])
    cell_data = setting_data(data, setting, seed)
    model = build_model(cell_data, run)
    setup_process(run.training, threads=False)  # the command chose the threads
    trainer = Trainer(model, cell_data, run, evaluator=evaluators['realistic'])
    start = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - start
    record: Dict[str, Any] = {'variant': variant, 'setting': setting, 'seed': seed,
                              'best_epoch': trainer.best_epoch, 'epochs': trainer.epoch}
    for ties, ev in evaluators.items():
        start = time.perf_counter()
        test = ev.evaluate(trainer.model, _test(cell_data))
        record[f'eval_seconds_{ties}'] = round(time.perf_counter() - start, 2)
        record[ties] = {k: test['both'][k] for k in ('mrr', 'mr', 'hits@1', 'hits@3', 'hits@10')}
        for group, g in test.get('per_group', {}).items():  # seen / unseen entities
            record[ties][f'{group}_mrr'] = g['both']['mrr']
            record[f'{group}_count'] = g['count']
    from native_pyg.training.trackers import modality_weights_by_presence
    record['valid_curve'] = [[rec['epoch'], rec['valid_mrr']] for rec in trainer.history
                             if 'valid_mrr' in rec]
    weights = modality_weights_by_presence(trainer.model, _test(cell_data))
    if weights:  # what the fusion weighs where features are present / missing
        record['modality_weights'] = weights
    params = sum(p.numel() for p in trainer.model.parameters())
    if trainer.generator is not None:
        params += sum(p.numel() for p in trainer.generator.parameters())
    epochs = [rec['seconds'] for rec in trainer.history]  # training only, no validation
    record.update(seconds_per_epoch=round(sum(epochs) / max(len(epochs), 1), 3),
                  fit_seconds=round(train_s, 1),
                  parameters=params, state_mb=round(params * 4 * 4 / 2**20, 1),
                  process_peak_rss_mb=round(
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return record


def _test(data):
    from native_pyg.data import split_triples
    return split_triples(data, 'test')


def select(grid: List[Tuple[str, str]], variants: Optional[Sequence[str]] = None,
           settings: Optional[Sequence[str]] = None) -> List[Tuple[str, str]]:
    """The pairs of ``grid`` whose variant is in ``variants`` and whose
    setting is, or starts with, one of ``settings`` (``'entity'`` selects
    ``'entity-0.2'`` ... ``'entity-0.8'``); ``None`` keeps all."""
    def wanted(setting: str) -> bool:
        return settings is None or any(setting == s or setting.startswith(f'{s}-')
                                       for s in settings)
    kept = [(v, s) for v, s in grid if (variants is None or v in variants) and wanted(s)]
    if not kept:
        raise ValueError(f"no cell of the experiment matches variants={list(variants or [])} "
                         f"settings={list(settings or [])}; it has variants "
                         f"{sorted({v for v, _ in grid})} and settings "
                         f"{sorted({s for _, s in grid})}")
    return kept


def check_request(name: str, variants: Optional[Sequence[str]] = None,
                  settings: Optional[Sequence[str]] = None,
                  shard: Tuple[int, int] = (0, 1)) -> List[Tuple[str, str]]:
    """The ``(variant, setting)`` pairs a request of experiment ``name``
    selects (:func:`select`); an unknown experiment, a selection that
    matches no cell or a shard ``(i, n)`` outside ``0 <= i < n`` is a
    one-line :class:`ValueError`."""
    grid = select(experiment_grid(name), variants, settings)
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: expected I/N with 0 <= I < N")
    return grid


def recorded_budget(out: str) -> Optional[Budget]:
    """The budget the cells in ``out`` were trained with, if recorded."""
    path = osp.join(out, 'budget.json')
    if not osp.exists(path):
        return None
    with open(path) as f:
        return Budget(**json.load(f))


def check_budget(out: str, budget: Budget) -> None:
    """Refuses (:class:`ValueError`) to add cells trained with ``budget``
    to an ``out`` whose cells were trained with another one."""
    kept = recorded_budget(out)
    if kept is not None and kept != budget:
        raise ValueError(f"{out} holds cells trained with another budget ({kept}); use a new "
                         f"--out, or the same budget (flags) to finish them")


def run_experiment(name: str, data: HeteroData, out: str, base=None,
                   budget: Optional[Budget] = None, seeds: Sequence[int] = (0, 1, 2),
                   progress: bool = True, log: Callable[[str], None] = print,
                   variants: Optional[Sequence[str]] = None,
                   settings: Optional[Sequence[str]] = None,
                   shard: Tuple[int, int] = (0, 1)) -> Dict[str, Any]:
    """Runs the cells of experiment ``name`` on ``data`` that ``out`` does
    not hold yet, then writes ``out/<name>.{json,md,png}`` from every cell
    ``out`` holds; returns the summary.

    ``variants`` / ``settings`` restrict the grid (:func:`select`);
    ``shard=(i, n)`` trains only the cells whose position in the grid is
    ``i`` modulo ``n``, so that ``n`` processes (or machines sharing ``out``)
    split one experiment; any of them, or a rerun, tabulates all finished
    cells."""
    from native_pyg.evaluation import LinkPredictionEvaluator
    from native_pyg.training import RunConfig
    grid = check_request(name, variants, settings, shard)
    index, count = shard
    budget = budget or Budget()
    check_budget(out, budget)
    base = (base or RunConfig()).override(budget.overrides())
    os.makedirs(osp.join(out, 'cells'), exist_ok=True)
    _write_atomic(osp.join(out, 'budget.json'), json.dumps(dataclasses.asdict(budget)))
    evaluators = {ties: LinkPredictionEvaluator.from_data(data, ties=ties,
                                                          batch_size=base.training.eval_batch_size)
                  for ties in ('realistic', 'optimistic')}
    cells = [(v, s, seed) for v, s in grid for seed in seeds]
    paths = [osp.join(out, 'cells', _cell_name(*cell) + '.json') for cell in cells]
    for i, ((variant, setting, seed), path) in enumerate(zip(cells, paths), 1):
        if (i - 1) % count != index or osp.exists(path):
            continue
        log(f"[{i}/{len(cells)}] {variant} / {setting} / seed {seed}")
        record = run_cell(data, base, variant, setting, seed, evaluators, progress)
        _write_atomic(path, json.dumps(record, indent=1))  # a finished cell is never redone
        log(f"    test MRR {100 * record['realistic']['mrr']:.2f} "
            f"({record['seconds_per_epoch']:.1f} s/epoch)")
    return tabulate(name, out, budget, seeds, variants, settings)


def tabulate(name: str, out: str, budget: Optional[Budget] = None,
             seeds: Sequence[int] = (0, 1, 2), variants: Optional[Sequence[str]] = None,
             settings: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Writes ``out/<name>.{json,md,png}`` from the finished cells in
    ``out/cells`` (from any shard or machine) without training; returns the
    summary. ``budget`` defaults to the one recorded in ``out``."""
    grid = select(experiment_grid(name), variants, settings)
    records = []
    for variant, setting in grid:
        for seed in seeds:
            path = osp.join(out, 'cells', _cell_name(variant, setting, seed) + '.json')
            if osp.exists(path):
                with open(path) as f:
                    records.append(json.load(f))
    if not records:
        raise ValueError(f"{out}/cells holds no finished cell of experiment {name!r} "
                         f"for seeds {list(seeds)}")
    budget = budget or recorded_budget(out) or Budget()
    summary = {'experiment': name, 'budget': dataclasses.asdict(budget),
               'seeds': list(seeds), 'rows': summarize(records, grid)}
    _write(out, name, summary)
    return summary


def _write_atomic(path: str, text: str) -> None:
    tmp = f'{path}.{os.getpid()}.tmp'  # shards may write the same table at once
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def _mean_std(values: List[float]) -> Tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


def summarize(records: List[Dict[str, Any]], grid: List[Tuple[str, str]]) -> List[Dict[str, Any]]:
    """One row per (variant, setting): mean and std over seeds."""
    rows = []
    for variant, setting in grid:
        cell = [r for r in records if r['variant'] == variant and r['setting'] == setting]
        if not cell:
            continue
        row: Dict[str, Any] = {'variant': variant, 'description': VARIANTS[variant][0],
                               'setting': setting, 'seeds': len(cell)}
        for ties in ('realistic', 'optimistic'):
            for k in ('mrr', 'mr', 'hits@1', 'hits@10', 'seen_mrr', 'unseen_mrr'):
                if all(k in r[ties] for r in cell):
                    row[f'{ties}_{k}'] = _mean_std([r[ties][k] for r in cell])
        for group in ('seen', 'unseen'):
            if f'{group}_count' in cell[0]:
                row[f'{group}_count'] = cell[0][f'{group}_count']
        for k in ('seconds_per_epoch', 'eval_seconds_realistic', 'state_mb',
                  'process_peak_rss_mb'):
            row[k] = _mean_std([r[k] for r in cell])
        rows.append(row)
    return rows


def _fmt(ms: Tuple[float, float], scale: float = 100.0, digits: int = 2) -> str:
    return f"{ms[0] * scale:.{digits}f} ± {ms[1] * scale:.{digits}f}"


def to_markdown(summary: Dict[str, Any]) -> str:
    b = summary['budget']
    lines = [f"# Experiment `{summary['experiment']}`", '',
             f"Budget: {b['epochs']} epochs, dim {b['hidden_channels']}, "
             f"{b['num_negatives']} negatives, lr {b['lr']}, batch {b['batch_size']}, "
             f"margin {b['margin']}, model selected on valid every {b['eval_every']} epochs; "
             f"seeds {summary['seeds']}. Filtered test metrics in %, mean ± std over seeds.", '']
    if summary['experiment'] == 'efficiency':
        lines += ['| variant | s / epoch | evaluation s | parameters + grads + Adam (MB) '
                  '| process peak RSS so far (MB) |', '|---|---|---|---|---|']
        for r in summary['rows']:
            lines.append(f"| {r['description']} | {_fmt(r['seconds_per_epoch'], 1)} | "
                         f"{_fmt(r['eval_seconds_realistic'], 1)} | {_fmt(r['state_mb'], 1, 1)} "
                         f"| {_fmt(r['process_peak_rss_mb'], 1, 0)} |")
        return '\n'.join(lines) + '\n'
    rows = summary['rows']
    # triples of seen entities vs touching an unseen one, where the data has both
    groups = [g for g in ('seen', 'unseen') if rows and all(f'realistic_{g}_mrr' in r for r in rows)]
    heads = [f"MRR {g} ({rows[0][f'{g}_count']} triples)" for g in groups]
    lines += ['| setting | variant | MRR | H@1 | H@10 | MR | MRR (optimistic ties) | '
              + ''.join(f'{h} | ' for h in heads).rstrip(), '|---' * (7 + len(groups)) + '|']
    for r in rows:
        lines.append(f"| {r['setting']} | {r['description']} | {_fmt(r['realistic_mrr'])} | "
                     f"{_fmt(r['realistic_hits@1'])} | {_fmt(r['realistic_hits@10'])} | "
                     f"{_fmt(r['realistic_mr'], 1, 0)} | {_fmt(r['optimistic_mrr'])} | "
                     + ''.join(f"{_fmt(r[f'realistic_{g}_mrr'])} | " for g in groups).rstrip())
    return '\n'.join(lines) + '\n'


def plot(summary: Dict[str, Any], path: str) -> None:
    """Test MRR per variant (bars), or against the missing rate (lines)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    rows = summary['rows']
    if summary['experiment'] == 'missing':
        for kind, style in (('entity', '-'), ('modality', '--')):
            for variant in dict.fromkeys(r['variant'] for r in rows):
                pts = sorted((float(r['setting'].rsplit('-', 1)[1]), r['realistic_mrr'])
                             for r in rows if r['variant'] == variant
                             and r['setting'].startswith(kind))
                if pts:
                    ax.errorbar([p[0] for p in pts], [100 * p[1][0] for p in pts],
                                yerr=[100 * p[1][1] for p in pts], linestyle=style, marker='o',
                                label=f'{variant} ({kind}-level)')
        ax.set(xlabel='missing rate', ylabel='test MRR (%)')
    elif summary['experiment'] == 'unseen' and rows and 'realistic_unseen_mrr' in rows[0]:
        for j, group in enumerate(('seen', 'unseen')):
            ax.bar([i + 0.4 * j for i in range(len(rows))],
                   [100 * r[f'realistic_{group}_mrr'][0] for r in rows], width=0.4,
                   yerr=[100 * r[f'realistic_{group}_mrr'][1] for r in rows],
                   label=f"{group} entities ({rows[0][f'{group}_count']} triples)")
        ax.set_xticks([i + 0.2 for i in range(len(rows))], [r['variant'] for r in rows],
                      rotation=30, ha='right')
        ax.set(ylabel='test MRR (%)')
        ax.legend(fontsize=7)
    else:
        key = 'seconds_per_epoch' if summary['experiment'] == 'efficiency' else 'realistic_mrr'
        scale = 1.0 if key == 'seconds_per_epoch' else 100.0
        ax.bar(range(len(rows)), [scale * r[key][0] for r in rows],
               yerr=[scale * r[key][1] for r in rows])
        ax.set_xticks(range(len(rows)), [r['variant'] for r in rows], rotation=30, ha='right')
        ax.set(ylabel='seconds per epoch' if scale == 1.0 else 'test MRR (%)')
    ax.set_title(f"experiment {summary['experiment']}")
    if summary['experiment'] == 'missing':
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _write(out: str, name: str, summary: Dict[str, Any]) -> None:
    _write_atomic(osp.join(out, f'{name}.json'), json.dumps(summary, indent=1))
    _write_atomic(osp.join(out, f'{name}.md'), to_markdown(summary))
    tmp = osp.join(out, f'{name}.{os.getpid()}.tmp.png')
    plot(summary, tmp)
    os.replace(tmp, osp.join(out, f'{name}.png'))

