"""The graph a training step runs on: the batch of triples
(:class:`KGBatch`), the training graph with its sampling CSC
(:class:`TrainingGraph`), PyG's neighbour loader over it
(:class:`KGNeighborLoader`), exact neighbourhoods and in-neighbourhood
batches (:mod:`~native_pyg.loader.neighbourhood`) and the subgraph one step
encodes (:class:`StepSubgraph`).

May import: :mod:`native_pyg.kernels`, :mod:`native_pyg.data`."""
from native_pyg.loader.neighbor_loader import (KGBatch, KGNeighborLoader, NeighborSamplingUnavailable,
                                               TrainingGraph, neighbor_sampling_backend)
from native_pyg.loader.neighbourhood import InNeighbourhoods, full_neighbourhood, local_index
from native_pyg.loader.step_subgraph import StepSubgraph

__all__ = [
    'KGBatch', 'KGNeighborLoader', 'TrainingGraph', 'NeighborSamplingUnavailable',
    'neighbor_sampling_backend', 'InNeighbourhoods', 'full_neighbourhood', 'local_index',
    'StepSubgraph',
]
