"""The graph a training step's model calls run on: the batch's subgraph (or
the exact neighbourhood of the entities a call reads), with the structure
that structure dropout hides."""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Optional, Sequence

import torch

from native_pyg.loader.neighbor_loader import KGBatch
from native_pyg.loader.neighbourhood import full_neighbourhood, local_index
from native_pyg.nn import NativE
from native_pyg.nn.gnn import LayerwiseEncoder


def step_graph(model: NativE, batch: KGBatch, hidden: Optional[torch.Tensor] = None,
               subgraph: Optional[Dict[str, Any]] = None) -> contextlib.ExitStack:
    """The context a step's model calls run in: the batch's subgraph (or
    the given ``subgraph`` arguments) for a model with a structural
    encoder (encoded once per context), and the structure ``hidden`` by
    structure dropout."""
    stack = contextlib.ExitStack()
    if subgraph is not None or batch.has_subgraph:
        stack.enter_context(model.subgraph(**(subgraph or batch.subgraph_kwargs())))
    if hidden is not None:
        stack.enter_context(model.hidden_structure(hidden))
    return stack


def neighbourhood_graph(model: NativE, batch: KGBatch, hidden: Optional[torch.Tensor],
                        entities: Sequence[torch.Tensor]) -> contextlib.ExitStack:
    """The context of model calls that read only the ``entities`` (global
    ids, tensors of any shape). A full-graph step's subgraph (the training
    graph less the batch's positives) is cut to the exact neighbourhood of
    those entities: the built-in (layer-wise, mean over each destination's
    edges) encoders then give them the same values from a fraction of the
    graph, each layer computed only for the nodes later layers read (with
    encoder dropout, the same in distribution)."""
    encoder = model.structural_encoder
    if (not batch.has_subgraph or batch.num_sampled_nodes is not None or batch.x_dict
            or not isinstance(encoder, LayerwiseEncoder)):
        return step_graph(model, batch, hidden)
    read = torch.unique(torch.cat([e.reshape(-1) for e in entities]))
    seeds = local_index(batch.n_id, model.num_entities)[read]
    if bool((seeds < 0).any()):  # an entity outside the step's graph: leave it as it is
        return step_graph(model, batch, hidden)
    sub = full_neighbourhood(seeds, batch.edge_index, batch.edge_type, batch.n_id.numel(),
                             encoder.num_layers)
    sub['n_id'] = batch.n_id[sub['n_id']]
    return step_graph(model, batch, hidden, sub)
