r"""Validation and test inside training, through a named protocol
(``training.eval_protocol``): ``full`` (1-vs-all, every entity embedded at
once), ``streamed`` (the same ranks over candidate chunks: a disk feature
store is read a chunk at a time, never whole) or ``sampled`` (``K`` seeded
filtered candidates per query); ``auto`` is ``streamed`` for a model whose
feature rows live in a store and ``full`` otherwise.

``training.eval_sample: N`` validates on a seeded subset of :math:`n = N`
valid triples and reports the 95 % confidence half-widths of the estimate
(:func:`~native_pyg.evaluation.query_subsets.confidence_interval`, finite
population corrected): on a large graph a validation every few thousand
steps then costs :math:`n` queries, not :math:`E_{valid}`.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

from torch import Tensor

from native_pyg.evaluation.protocols import PROTOCOL_CHOICES, Protocol, evaluator_for
from native_pyg.evaluation.query_subsets import evaluate_sample
from native_pyg.evaluation.sharded import ShardedStreamingEvaluator
from native_pyg.training import distributed
from native_pyg.kernels.allocator import freed_memory_returned
from native_pyg.config.run_config import TrainConfig

#: the values of ``training.eval_protocol``
EVAL_PROTOCOLS = PROTOCOL_CHOICES


def resolve_protocol(protocol: str, stored_features: bool) -> str:
    """The protocol ``auto`` stands for: ``streamed`` when feature rows live
    in a store (``stored_features``), else ``full``."""
    return Protocol.resolve(protocol, stored_features, 'training.eval_protocol').value


def training_evaluator(data, cfg: TrainConfig, stored_features: bool,
                       sharded_table: bool = False) -> Tuple[str, Any]:
    """``(protocol, evaluator)`` for a trainer's validation and test; a
    model whose table is sharded over the processes ranks by the streamed
    protocol, each process streaming the candidates it holds
    (:class:`~native_pyg.evaluation.sharded.ShardedStreamingEvaluator`)."""
    if sharded_table:
        if cfg.eval_protocol not in ('auto', 'streamed'):
            raise ValueError(f"training.eval_protocol={cfg.eval_protocol}: a sharded table is "
                             f"evaluated by the streamed protocol (auto or streamed)")
        return 'streamed', ShardedStreamingEvaluator.from_data(data, compile=cfg.compile)
    protocol = resolve_protocol(cfg.eval_protocol, stored_features)
    return protocol, evaluator_for(data, protocol, cfg.eval_candidates,
                                   eval_batch_size=cfg.eval_batch_size, compile=cfg.compile)


def evaluate_split(evaluator, model, triples: Tensor, protocol: str,
                   dist: distributed.DistributedInfo, sample: int = 0,
                   seed: int = 0) -> Dict[str, Any]:
    """Filtered metrics of ``model`` on ``triples`` by ``evaluator`` (ranks
    split over the processes under ``torch.distributed``), on a seeded
    subset of ``sample`` of them when ``0 < sample < len(triples)``, with
    ``'protocol'``, and for a subset ``'sampled_queries'``,
    ``'total_queries'``, ``'sample_seed'`` and ``'ci95'``."""
    def ranks_of(part: Tensor):
        if evaluator.ranks_every_query:  # its processes hold other candidates
            return evaluator.ranks(model, part)
        return distributed.sharded_ranks(lambda p: evaluator.ranks(model, p), part, dist)

    out = evaluate_sample(evaluator, model, triples, sample or None, seed, ranks_of=ranks_of)
    out['protocol'] = protocol
    return out


def evaluate_splits(trainer, splits: Sequence[str], progress: bool = False) -> Dict[str, Any]:
    """``{split: trainer.evaluate(split)}`` of one model: under the streamed
    protocol its structural encoder runs once for all the splits (one
    layer-wise inference over the whole graph, instead of one per split)."""
    shared = trainer.evaluator.encoded_once(trainer.model, progress)
    with freed_memory_returned(), shared:
        return {split: trainer.evaluate(split, progress and split == splits[-1])
                for split in splits}
