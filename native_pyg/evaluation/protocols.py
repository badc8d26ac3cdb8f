"""The evaluation protocols by name, as the command line and configs choose
them: ``full`` (1-vs-all ranks, all entities embedded at once), ``streamed``
(the same ranks over candidate chunks, bounded memory) and ``sampled``
(``K`` seeded filtered candidates per query, as OGB's wikikg2)."""
from __future__ import annotations

from typing import Any

from native_pyg.evaluation.link_prediction import LinkPredictionEvaluator
from native_pyg.evaluation.sampled_candidates import SampledLinkPredictionEvaluator
from native_pyg.evaluation.streaming import StreamingLinkPredictionEvaluator

#: protocol name -> evaluator class
PROTOCOLS = {'full': LinkPredictionEvaluator, 'streamed': StreamingLinkPredictionEvaluator,
             'sampled': SampledLinkPredictionEvaluator}


def evaluator_for(data, protocol: str = 'full', num_candidates: int = 1000,
                  **kwargs: Any) -> LinkPredictionEvaluator:
    """The evaluator of ``protocol`` for an MMKG ``data`` (``from_data``);
    ``num_candidates`` is the sampled protocol's :math:`K`."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown evaluation protocol {protocol!r}; expected one of "
                         f"{', '.join(PROTOCOLS)}")
    if protocol == 'sampled':
        kwargs['num_candidates'] = num_candidates
    return PROTOCOLS[protocol].from_data(data, **kwargs)
