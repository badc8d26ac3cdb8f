"""The training steps of an epoch: shuffled positives with Bernoulli
negatives, plus the subgraph a structural GNN encoder runs on."""
from __future__ import annotations

from typing import Iterable, Iterator, Optional, Tuple

import torch
from torch import Tensor

from native_pyg.loader.neighbor_loader import KGBatch, KGNeighborLoader, TrainingGraph
from native_pyg.config.run_config import TrainConfig
from native_pyg.training.distributed import shard_permutation
from native_pyg.training.negative_sampling import BernoulliNegativeSampler


class TripleBatches:
    r"""One epoch of :class:`~native_pyg.loader.neighbor_loader.KGBatch` steps per
    iteration: a fresh permutation of the training triples cut into
    ``floor(E / batch_size)`` batches (as the reference code), each with the
    negatives of ``sampler`` drawn right before it is used.

    Args:
        triples (torch.Tensor): ``[E, 3]`` training triples.
        batch_size (int): Positives per step.
        sampler (BernoulliNegativeSampler): Negatives.
        generator (torch.Generator): The shuffling generator.
        graph (TrainingGraph, optional): Attach this whole graph, minus each
            batch's positives, to every step (full-graph GNN training).
            (default: :obj:`None`)
        shard (tuple[int, int], optional): ``(rank, world_size)``: this
            process's part of every epoch's permutation (the same on every
            rank), see :func:`~native_pyg.training.distributed.shard_permutation`.
            (default: :obj:`(0, 1)`)
    """
    def __init__(self, triples: Tensor, batch_size: int, sampler: BernoulliNegativeSampler,
                 generator: torch.Generator, graph: Optional[TrainingGraph] = None,
                 shard: Tuple[int, int] = (0, 1)):
        if batch_size < 1:
            raise ValueError(f"training.batch_size must be >= 1, got {batch_size}")
        self.triples, self.batch_size, self.sampler = triples, int(batch_size), sampler
        self.generator, self.graph, self.shard = generator, graph, shard
        #: the next pass starts at this step (its permutation drawn as always, the steps
        #: before it skipped without drawing their negatives); then back to 0
        self.start = 0

    def _count(self) -> int:
        """Triples per epoch on this rank."""
        return -(-self.triples.size(0) // self.shard[1])

    def __len__(self) -> int:
        return max(1, self._count() // self.batch_size)

    def __iter__(self) -> Iterator[KGBatch]:
        perm = shard_permutation(torch.randperm(self.triples.size(0), generator=self.generator),
                                 *self.shard)
        n = perm.numel()
        size = min(self.batch_size, n)
        start, self.start = self.start, 0
        for i in range(start, len(self)):
            pos = self.triples[perm[i * size:(i + 1) * size]]
            neg, corrupt_head = self.sampler.sample(pos)
            yield (KGBatch(pos, neg, corrupt_head) if self.graph is None
                   else self.graph.full_batch(pos, neg, corrupt_head))


def training_steps(data, triples: Tensor, sampler: BernoulliNegativeSampler,
                   generator: torch.Generator, cfg: TrainConfig,
                   structural_encoder: bool, modalities=None,
                   shard: Tuple[int, int] = (0, 1), feature_store=None,
                   fetch: str = 'nodes') -> Iterable[KGBatch]:
    """The steps of an epoch for a model with or without a structural GNN
    encoder: plain triple batches (no encoder), full-graph steps
    (``training.num_neighbors: null``) or a :class:`KGNeighborLoader`;
    ``shard=(rank, world_size)`` under ``torch.distributed``; feature rows
    come from ``feature_store`` when given (rows kept on disk), for the
    sampled nodes or the seeds only (``fetch``, see :class:`KGNeighborLoader`)."""
    if not structural_encoder:
        if cfg.num_neighbors is not None:
            raise ValueError("training.num_neighbors samples neighbourhoods for a GNN encoder; "
                             "set model.encoder (rgcn or compgcn) or leave it null")
        return TripleBatches(triples, cfg.batch_size, sampler, generator, shard=shard)
    if cfg.num_neighbors is None:
        return TripleBatches(triples, cfg.batch_size, sampler, generator,
                             graph=TrainingGraph.from_data(data), shard=shard)
    return KGNeighborLoader(
        data, cfg.num_neighbors,
        TripleBatches(triples, cfg.batch_size, sampler, generator, shard=shard),
        modalities=modalities, feature_store=feature_store, fetch=fetch,
        num_workers=cfg.num_workers,
        pin_memory=cfg.pin_memory,
        persistent_workers=cfg.persistent_workers and cfg.num_workers > 0)


def passes_of(steps: Iterable[KGBatch]) -> TripleBatches:
    """The :class:`TripleBatches` behind the steps :func:`training_steps`
    returned (themselves, or those of a neighbour loader)."""
    return steps if isinstance(steps, TripleBatches) else steps.batches
