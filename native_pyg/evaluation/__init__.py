"""Filtered rank-based link-prediction evaluation."""
from .link_prediction import LinkPredictionEvaluator, compare_metrics, format_metrics
from .ranks import TIES, KnownTripleFilter, rank_from_scores, ranking_metrics
from .query_subsets import confidence_interval, evaluate_sample, sample_queries
from .sampled_candidates import SampledLinkPredictionEvaluator
from .streaming import StreamingLinkPredictionEvaluator

__all__ = [
    'LinkPredictionEvaluator',
    'StreamingLinkPredictionEvaluator',
    'SampledLinkPredictionEvaluator',
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
