r"""Filtered rank-based link-prediction evaluation: one ranking base and the
protocols as its siblings.

What lives here, bottom floor first:

- :mod:`~native_pyg.evaluation.ranks`: tie rules and the rank of a target
  among scores; :mod:`~native_pyg.evaluation.known_triples`: the filter of
  known answers; :mod:`~native_pyg.evaluation.metrics`: MRR, MR, Hits@k and
  the metric dictionary; :mod:`~native_pyg.evaluation.query_subsets`: a
  seeded subset of the queries with confidence intervals;
- :mod:`~native_pyg.evaluation.base`: :class:`RankingEvaluator`, what every
  protocol shares (filter, query chunks, checks, metrics, subsampling, the
  ``evaluate`` entry point, ``from_data``) and the evaluation's runtime
  (:func:`~native_pyg.evaluation.base.eval_mode`);
  :mod:`~native_pyg.evaluation.reporting`: results as text;
- the protocols, one module each: :mod:`~native_pyg.evaluation.full`
  (:class:`LinkPredictionEvaluator`, 1-vs-all),
  :mod:`~native_pyg.evaluation.streamed`
  (:class:`StreamingLinkPredictionEvaluator`, the same ranks over candidate
  chunks) and :mod:`~native_pyg.evaluation.sampled`
  (:class:`SampledLinkPredictionEvaluator`, ``K`` sampled candidates);
- :mod:`~native_pyg.evaluation.protocols`: the protocols by name
  (:class:`Protocol`, :func:`evaluator_for`).

It may import ``kernels``, ``data``, ``loader``, ``nn`` and ``config``,
never ``training`` or anything above.
"""
from native_pyg.evaluation.base import RankingEvaluator
from native_pyg.evaluation.full import LinkPredictionEvaluator
from native_pyg.evaluation.known_triples import KnownTripleFilter
from native_pyg.evaluation.metrics import ranking_metrics
from native_pyg.evaluation.protocols import PROTOCOLS, Protocol, evaluator_for
from native_pyg.evaluation.query_subsets import confidence_interval, evaluate_sample, sample_queries
from native_pyg.evaluation.ranks import TIES, rank_from_scores
from native_pyg.evaluation.reporting import compare_metrics, format_metrics
from native_pyg.evaluation.sampled import SampledLinkPredictionEvaluator
from native_pyg.evaluation.sharded import ShardedStreamingEvaluator
from native_pyg.evaluation.streamed import StreamingLinkPredictionEvaluator

__all__ = [
    'RankingEvaluator',
    'LinkPredictionEvaluator',
    'StreamingLinkPredictionEvaluator',
    'SampledLinkPredictionEvaluator',
    'ShardedStreamingEvaluator',
    'Protocol',
    'PROTOCOLS',
    'evaluator_for',
    'KnownTripleFilter',
    'rank_from_scores',
    'ranking_metrics',
    'format_metrics',
    'compare_metrics',
    'sample_queries',
    'confidence_interval',
    'evaluate_sample',
    'TIES',
]
