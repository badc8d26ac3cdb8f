"""Filtered rank-based link-prediction evaluation."""
from .link_prediction import LinkPredictionEvaluator, compare_metrics, format_metrics
from .ranks import TIES, KnownTripleFilter, rank_from_scores, ranking_metrics

__all__ = [
    'LinkPredictionEvaluator',
    'KnownTripleFilter',
    'rank_from_scores',
    'ranking_metrics',
    'format_metrics',
    'compare_metrics',
    'TIES',
]
