r"""Evaluation on a seeded subset of the queries, with confidence intervals:
the subset (:func:`sample_queries`), the half-widths of the metrics'
intervals (:func:`confidence_interval`) and the metrics of any evaluator on
a subset (:func:`evaluate_sample`, what
:meth:`~native_pyg.evaluation.base.RankingEvaluator.evaluate` does with
``sample``)."""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor

__all__ = ['sample_queries', 'confidence_interval', 'evaluate_sample']


def sample_queries(triples: Tensor, n: int, seed: int = 0,
                   return_index: bool = False):
    """A seeded subset of ``n`` rows of ``triples`` (``[E, ...]``), drawn
    uniformly without replacement and kept in their original order (all rows,
    copied, when ``n >= E``); with ``return_index`` also their ``[n]``
    positions. The same ``(E, n, seed)`` always picks the same rows (a CPU
    :class:`torch.Generator`, independent of the global RNG)."""
    triples = torch.as_tensor(triples)
    n, total = int(n), triples.size(0)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    gen = torch.Generator().manual_seed(int(seed))
    index = torch.randperm(total, generator=gen)[:n].sort().values
    subset = triples[index.to(triples.device)].clone()
    return (subset, index) if return_index else subset


def confidence_interval(values: Tensor, level: float = 0.95, hits: Sequence[int] = (1, 3, 10),
                        population: Optional[int] = None,
                        reciprocal: bool = False) -> Dict[str, float]:
    r"""``{'mrr', 'mr', 'hits@k'...}``: half-widths of the ``level``
    confidence intervals of the metrics estimated from ``values``, the
    ``[n]`` or ``[n, k]`` ranks (or with ``reciprocal`` their reciprocals)
    of a uniform sample of ``n`` units drawn without replacement from
    ``population`` units (``None``: infinitely many).

    Normal approximation (no bootstrap): a unit (row) contributes its mean
    reciprocal rank, rank and hit indicator over its columns (e.g. the head
    and tail rank of one triple, which are not independent), and the
    half-width of metric :math:`m` is :math:`z_{(1+\text{level})/2}
    \sqrt{s_m^2 / n \cdot (P - n) / (P - 1)}` with :math:`s_m^2` the units'
    sample variance (finite-population corrected: 0 when the sample is the
    population; infinite for one unit of a larger one).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    values = torch.as_tensor(values).detach().to('cpu', torch.float64)
    values = values.unsqueeze(1) if values.dim() == 1 else values
    if values.dim() != 2 or values.numel() == 0:
        raise ValueError(f"values must be a non-empty [n] or [n, k] tensor, "
                         f"got shape {tuple(values.shape)}")
    ranks, n = (1.0 / values if reciprocal else values), values.size(0)
    size = n if population is None else int(population)
    if size < n:
        raise ValueError(f"population ({population}) is smaller than the sample ({n})")
    per_unit = {'mrr': (1.0 / ranks).mean(1), 'mr': ranks.mean(1)}
    for k in hits:
        per_unit[f'hits@{int(k)}'] = (ranks <= k).to(torch.float64).mean(1)
    if population is not None and size == n:
        return {key: 0.0 for key in per_unit}
    if n < 2:
        return {key: math.inf for key in per_unit}
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    fpc = 1.0 if population is None else (size - n) / (size - 1)
    return {key: float(z * math.sqrt(float(v.var(unbiased=True)) / n * fpc))
            for key, v in per_unit.items()}


def evaluate_sample(evaluator: Any, model: Any, triples: Tensor,
                    sample: Optional[int] = None, seed: int = 0,
                    level: float = 0.95, ranks_of=None) -> Dict[str, Any]:
    r"""The metrics of ``evaluator`` (its ``ranks`` and
    ``metrics_from_ranks``) for ``model`` on ``triples``, on a seeded subset of
    ``sample`` triples (:func:`sample_queries`) when ``sample`` is given and
    smaller than the number of triples :math:`E`. The result then also
    holds ``'sampled_queries'`` (:math:`n`), ``'total_queries'``
    (:math:`E`) and ``'ci95'`` (for ``level=0.95``): the half-widths of the
    filtered MRR, MR and Hits@k over both directions
    (:func:`confidence_interval` with the triple as sampling unit, its head
    and tail rank averaged, finite-population corrected). Works with any
    evaluator that has ``ranks``, ``metrics_from_ranks`` and ``hits``, e.g.
    every :class:`~native_pyg.evaluation.base.RankingEvaluator`. ``ranks_of``
    (``triples -> ranks``, default ``evaluator.ranks(model, triples)``)
    ranks the chosen triples another way, e.g. split over processes."""
    if ranks_of is None:
        def ranks_of(part: Tensor):
            return evaluator.ranks(model, part)
    triples = torch.as_tensor(triples)
    total = triples.size(0)
    if sample is None or int(sample) >= total:
        return evaluator.metrics_from_ranks(triples, *ranks_of(triples))
    subset = sample_queries(triples, int(sample), seed)
    ranks = ranks_of(subset)
    out = evaluator.metrics_from_ranks(subset, *ranks)
    out[f'ci{level * 100:g}'] = confidence_interval(torch.stack(ranks[:2], 1), level,
                                                    evaluator.hits, population=total)
    out.update(sampled_queries=int(subset.size(0)), total_queries=int(total),
               sample_seed=int(seed))
    return out
