r"""The exact computation graph of a GNN around a few seed entities: every
node within ``num_hops`` hops and every edge into the nodes within
``num_hops - 1`` hops, ordered by hop as PyG's samplers order a sampled
subgraph (so that an encoder trims each layer to the nodes later layers
need, see :meth:`LayerwiseEncoder.forward
<native_pyg.nn.gnn.LayerwiseEncoder.forward>`).

Pure PyTorch (no sampling backend): it is what
:class:`~torch_geometric.loader.NeighborLoader` returns with
``num_neighbors=[-1] * num_hops``, so an encoder's output on the seeds
equals its full-graph output on them.
"""
from __future__ import annotations

from typing import Dict, List

import torch
from torch import Tensor


def full_neighbourhood(seeds: Tensor, edge_index: Tensor, edge_type: Tensor,
                       num_nodes: int, num_hops: int) -> Dict[str, object]:
    r"""The ``num_hops``-hop neighbourhood of ``seeds`` with all edges.

    Args:
        seeds (torch.Tensor): ``[S]`` distinct global node ids (kept first,
            in this order).
        edge_index (torch.Tensor): ``[2, E]`` global edges ``src -> dst``.
        edge_type (torch.Tensor): ``[E]`` edge types.
        num_nodes (int): Number of nodes of the graph.
        num_hops (int): Hops (a GNN's number of layers).

    Returns:
        The arguments of :class:`~native_pyg.nn.subgraph.StepSubgraph`
        (:meth:`NativE.subgraph <native_pyg.nn.NativE.subgraph>`):
        ``n_id`` (nodes by hop, seeds first), local ``edge_index`` and
        ``edge_type`` (the edges of hop :math:`k` end in the nodes first
        reached at hop :math:`k - 1`), ``num_sampled_nodes`` and
        ``num_sampled_edges`` per hop.
    """
    src, dst = edge_index
    device = src.device
    seeds = seeds.to(device).long().view(-1)
    local = torch.full((num_nodes,), -1, dtype=torch.long, device=device)
    local[seeds] = torch.arange(seeds.numel(), device=device)
    nodes: List[Tensor] = [seeds]
    rows: List[Tensor] = []
    cols: List[Tensor] = []
    types: List[Tensor] = []
    count = seeds.numel()
    frontier = torch.zeros(num_nodes, dtype=torch.bool, device=device)
    for _ in range(num_hops):
        frontier.zero_()
        frontier[nodes[-1]] = True
        into = frontier[dst].nonzero().view(-1)  # the edges into the last hop's new nodes
        e_src = src[into]
        new = torch.unique(e_src[local[e_src] < 0])
        local[new] = torch.arange(count, count + new.numel(), device=device)
        count += new.numel()
        nodes.append(new)
        rows.append(local[e_src])
        cols.append(local[dst[into]])
        types.append(edge_type[into])
    return dict(n_id=torch.cat(nodes), edge_index=torch.stack([torch.cat(rows), torch.cat(cols)]),
                edge_type=torch.cat(types), num_sampled_nodes=[n.numel() for n in nodes],
                num_sampled_edges=[t.numel() for t in types])
