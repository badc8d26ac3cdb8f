"""The evaluation protocols by name, as the command line and configs choose
them, checked in this one place: ``full`` (1-vs-all ranks, all entities
embedded at once), ``streamed`` (the same ranks over candidate chunks,
bounded memory) and ``sampled`` (``K`` seeded filtered candidates per
query, as OGB's wikikg2); an option may also say ``auto``
(:meth:`Protocol.resolve`). :func:`evaluator_for` builds a protocol's
evaluator for a graph."""
from __future__ import annotations

from enum import Enum
from typing import Any, Dict, Optional, Type

from native_pyg.evaluation.base import RankingEvaluator
from native_pyg.evaluation.full import LinkPredictionEvaluator
from native_pyg.evaluation.sampled import SampledLinkPredictionEvaluator
from native_pyg.evaluation.streamed import StreamingLinkPredictionEvaluator

__all__ = ['Protocol', 'AUTO', 'PROTOCOL_CHOICES', 'PROTOCOLS', 'evaluator_for']

#: the value of a protocol option that lets the model's inputs decide
AUTO = 'auto'


class Protocol(Enum):
    """An evaluation protocol; its value is the name options and results use."""
    FULL = 'full'
    STREAMED = 'streamed'
    SAMPLED = 'sampled'

    @classmethod
    def parse(cls, name: str) -> 'Protocol':
        """The protocol called ``name``; ``ValueError`` for any other name."""
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown evaluation protocol {name!r}; expected one of "
                             f"{', '.join(p.value for p in cls)}") from None

    @classmethod
    def resolve(cls, name: str, stored_features: bool,
                option: str = 'the evaluation protocol') -> 'Protocol':
        """The protocol an option's ``name`` stands for: :data:`AUTO` is
        ``streamed`` when the model's feature rows live in a store
        (``stored_features``: read a chunk at a time, never whole) and
        ``full`` otherwise. ``ValueError`` (naming ``option``) for a name
        outside :data:`PROTOCOL_CHOICES`."""
        if name == AUTO:
            return cls.STREAMED if stored_features else cls.FULL
        if name not in PROTOCOL_CHOICES:
            raise ValueError(f"{option} must be one of {', '.join(PROTOCOL_CHOICES)}, "
                             f"got {name!r}")
        return cls(name)


#: every value of a protocol option: ``auto``, then the protocols
PROTOCOL_CHOICES = (AUTO,) + tuple(p.value for p in Protocol)

#: protocol name -> evaluator class
PROTOCOLS: Dict[str, Type[RankingEvaluator]] = {
    Protocol.FULL.value: LinkPredictionEvaluator,
    Protocol.STREAMED.value: StreamingLinkPredictionEvaluator,
    Protocol.SAMPLED.value: SampledLinkPredictionEvaluator,
}


def evaluator_for(data, protocol: str = 'full', num_candidates: int = 1000,
                  eval_batch_size: Optional[int] = None, **kwargs: Any) -> RankingEvaluator:
    """The evaluator of ``protocol`` for an MMKG ``data`` (``from_data``).

    Args:
        data (torch_geometric.data.HeteroData): The graph.
        protocol (str): The protocol's name. (default: :obj:`'full'`)
        num_candidates (int): The sampled protocol's :math:`K`; the others
            ignore it. (default: :obj:`1000`)
        eval_batch_size (int, optional): The full protocol's queries per
            model call (``training.eval_batch_size``); the streamed and
            sampled protocols keep their own batch sizes. (default:
            :obj:`None`, the evaluator's default)
        **kwargs: The other arguments of the evaluator.
    """
    kind = Protocol.parse(protocol)
    if kind is Protocol.SAMPLED:
        kwargs['num_candidates'] = num_candidates
    elif kind is Protocol.FULL and eval_batch_size is not None:
        kwargs['batch_size'] = eval_batch_size
    return PROTOCOLS[kind.value].from_data(data, **kwargs)
