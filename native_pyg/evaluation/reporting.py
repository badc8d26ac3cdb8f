"""Evaluation results as text: one result as a table
(:func:`format_metrics`), several models side by side
(:func:`compare_metrics`)."""
from __future__ import annotations

from typing import Any, List, Mapping, Tuple

from native_pyg.evaluation.metrics import DIRECTIONS

__all__ = ['format_metrics', 'compare_metrics']


def _metric_rows(metrics: Mapping[str, Any]) -> List[Tuple[str, str, float]]:
    """``(label, key, scale)`` for MRR, MR and every Hits@k in ``metrics``."""
    keys = [k for k in metrics['both'] if k.startswith('hits@')]
    keys.sort(key=lambda k: int(k.split('@')[1]))
    return ([('MRR', 'mrr', 100.0), ('MR', 'mr', 1.0)]
            + [(f"H@{k.split('@')[1]}", k, 100.0) for k in keys])


def _cell(value: float, scale: float) -> str:
    return f'{value * scale:.2f}' if scale != 1.0 else f'{value:.1f}'


def format_metrics(metrics: Mapping[str, Any], per_category: bool = True) -> str:
    """A readable table of one evaluation's result
    (:meth:`~native_pyg.evaluation.base.RankingEvaluator.evaluate`):
    rows MRR, MR, Hits@k (MRR and Hits in %); columns filtered head, tail,
    both and raw both; then, if present, filtered MRR and the largest Hits@k
    per relation category."""
    rows = _metric_rows(metrics)
    lines = [f"link prediction: {metrics.get('num_triples', '?')} triples, filtered ranks "
             f"(raw both: unfiltered), ties={metrics.get('ties', '?')}, MRR and Hits in %",
             f"{'metric':<8}{'head':>10}{'tail':>10}{'both':>10}{'raw both':>10}"]
    for label, key, scale in rows:
        cells = [metrics[d][key] for d in DIRECTIONS] + [metrics['raw']['both'][key]]
        lines.append(f'{label:<8}' + ''.join(f'{_cell(v, scale):>10}' for v in cells))
    # MRR and the largest Hits@k per relation category and per entity group
    shown = [(label, key) for label, key, _ in rows if key != 'mr']
    shown = shown[:1] + shown[-1:] if len(shown) > 1 else shown
    for title, groups in (('category', metrics.get('per_category') if per_category else None),
                          ('entities', metrics.get('per_group'))):
        if not groups:
            continue
        lines.append('')
        lines.append(f"{title:<9}{'count':>7}" + ''.join(
            f'{d + " " + label:>12}' for label, _ in shown for d in DIRECTIONS))
        for name, g in groups.items():
            cells = [g[d][key] * 100.0 for _, key in shown for d in DIRECTIONS]
            lines.append(f"{name:<9}{g['count']:>7}" + ''.join(f'{v:>12.2f}' for v in cells))
    return '\n'.join(lines)


def compare_metrics(named: Mapping[str, Mapping[str, Any]]) -> str:
    """Several models side by side: one column per model, rows MRR, MR and
    Hits@k (filtered, averaged over head and tail; MRR and Hits in %) and raw
    MRR. The header states the tie rule, and flags mixed rules."""
    if not named:
        return '(no results)'
    names = list(named)
    first = named[names[0]]
    rows = _metric_rows(first)
    width = max(10, *(len(n) + 2 for n in names))
    ties = sorted({str(m.get('ties', '?')) for m in named.values()})
    note = f'ties={ties[0]}' if len(ties) == 1 else f"MIXED tie rules {ties}: not comparable"
    lines = [f'filtered link prediction, both directions, {note} (MRR and Hits in %)',
             f"{'metric':<9}" + ''.join(f'{n:>{width}}' for n in names)]
    for label, key, scale in rows:
        lines.append(f'{label:<9}' + ''.join(
            f'{_cell(named[n]["both"][key], scale):>{width}}' for n in names))
    lines.append(f"{'raw MRR':<9}" + ''.join(
        f'{_cell(named[n]["raw"]["both"]["mrr"], 100.0):>{width}}' for n in names))
    return '\n'.join(lines)
