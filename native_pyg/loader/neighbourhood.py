r"""The exact computation graph of a GNN around a few seed entities: every
node within ``num_hops`` hops and every edge into the nodes within
``num_hops - 1`` hops, ordered by hop as PyG's samplers order a sampled
subgraph (so that an encoder trims each layer to the nodes later layers
need, see :meth:`LayerwiseEncoder.forward
<native_pyg.nn.gnn.LayerwiseEncoder.forward>`).

Pure PyTorch (no sampling backend): it is what
:class:`~torch_geometric.loader.NeighborLoader` returns with
``num_neighbors=[-1] * num_hops``, so an encoder's output on the seeds
equals its full-graph output on them. :class:`InNeighbourhoods` gives the
1-hop case for every node of a graph, batch by batch (layer-wise inference).
"""
from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Tuple

import torch
from torch import Tensor


def local_index(n_id: Tensor, num_nodes: int) -> Tensor:
    """``[num_nodes]``: the position of each node in ``n_id`` (distinct
    global ids, e.g. a subgraph's nodes), ``-1`` for nodes not in it."""
    local = torch.full((int(num_nodes),), -1, dtype=torch.long, device=n_id.device)
    local[n_id] = torch.arange(n_id.numel(), device=n_id.device)
    return local


def destination_order(dst: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
    """``(colptr [N + 1], perm [E])`` of edges ending in ``dst``: the offsets
    of each node's in-edges once sorted by destination, and the sorting
    permutation, in the order PyG's samplers sort them
    (:func:`~torch_geometric.utils.index_sort`, so the same neighbour order)."""
    from torch_geometric.utils import index_sort
    colptr = torch.zeros(int(num_nodes) + 1, dtype=torch.long)
    colptr[1:] = torch.bincount(dst, minlength=int(num_nodes)).cumsum(0)
    return colptr, index_sort(dst)[1]


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
        The arguments of :class:`~native_pyg.loader.step_subgraph.StepSubgraph`
        (:meth:`NativE.subgraph <native_pyg.nn.NativE.subgraph>`):
        ``n_id`` (nodes by hop, seeds first), local ``edge_index`` and
        ``edge_type`` (the edges of hop :math:`k` end in the nodes first
        reached at hop :math:`k - 1`), ``num_sampled_nodes`` and
        ``num_sampled_edges`` per hop.
    """
    src, dst = edge_index
    device = src.device
    seeds = seeds.to(device).long().view(-1)
    local = local_index(seeds, num_nodes)
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


class NeighbourhoodBatch(NamedTuple):
    """Targets ``n_id[:batch_size]`` (consecutive ids), then their in-edges'
    other sources; ``edge_index`` local ``src -> dst``, every ``dst`` a
    target; the edges' ``edge_type``."""
    n_id: Tensor
    edge_index: Tensor
    edge_type: Tensor
    batch_size: int


class InNeighbourhoods:
    r"""A graph's in-edges sorted by destination (CSC), read as batches of
    consecutive target nodes with **all** their in-edges: what
    :class:`~torch_geometric.loader.NeighborLoader` gives with
    ``num_neighbors=[-1]``, ``subgraph_type='directional'`` and targets in
    order, as slices of one sorted copy of the edges (PyG's loader holds
    the ``[2, E]`` edges in a ``Data`` object and sorts a copy of its own).

    Args:
        colptr (torch.Tensor): ``[N + 1]`` offsets of each node's in-edges.
        row (torch.Tensor): ``[E]`` the sources, sorted by destination.
        edge_id (torch.Tensor): ``[E]`` the edge id at each sorted position.
        type_of (callable): The ``edge_type`` of edge ids.
    """
    def __init__(self, colptr: Tensor, row: Tensor, edge_id: Tensor,
                 type_of: Callable[[Tensor], Tensor]):
        if colptr.dim() != 1 or colptr.numel() < 1 or int(colptr[-1]) != row.numel() \
                or edge_id.shape != row.shape:
            raise ValueError(f"colptr [N + 1] must end at the {row.numel()} edges of row, "
                             f"and edge_id match row's shape")
        self.colptr, self.row, self.edge_id, self.type_of = colptr, row, edge_id, type_of
        self.num_nodes = colptr.numel() - 1

    @classmethod
    def from_edges(cls, edge_index: Tensor, edge_type: Tensor,
                   num_nodes: int) -> 'InNeighbourhoods':
        """From explicit ``[2, E]`` edges ``src -> dst`` and their ``[E]`` types."""
        src, dst = edge_index.detach().cpu().long()
        colptr, perm = destination_order(dst, num_nodes)
        types = edge_type.detach().cpu()
        return cls(colptr, src[perm], perm, lambda e: types[e])

    @classmethod
    def of_training_graph(cls, graph) -> 'InNeighbourhoods':
        """From a :class:`~native_pyg.loader.neighbor_loader.TrainingGraph` (triples plus
        inverse edges), without building its :math:`2E` edge arrays."""
        colptr, row, perm = graph.sampling_csc()
        return cls(colptr, row, perm, lambda e: graph.edge_type_of(e.long()))

    def __len__(self) -> int:
        return self.row.numel()

    def bounds(self, max_targets: int, max_edges: int) -> List[Tuple[int, int]]:
        """``(start, stop)`` of consecutive targets covering all nodes in
        order, each range of at most ``max_targets`` targets and, where a
        target allows, at most ``max_edges`` in-edges (a target with more
        comes alone)."""
        if max_targets < 1 or max_edges < 1:
            raise ValueError(f"max_targets and max_edges must be >= 1, got "
                             f"{max_targets} and {max_edges}")
        colptr, n, a, out = self.colptr, self.num_nodes, 0, []
        while a < n:
            within = int(torch.searchsorted(colptr, colptr[a] + max_edges, right=True)) - 1
            b = max(a + 1, min(a + max_targets, n, within))
            out.append((a, b))
            a = b
        return out

    def batch(self, start: int, stop: int) -> NeighbourhoodBatch:
        """Targets ``start:stop`` with all their in-edges."""
        lo, hi = int(self.colptr[start]), int(self.colptr[stop])
        src = self.row[lo:hi].long()
        outside = (src < start) | (src >= stop)
        others = torch.unique(src[outside])
        local = src - start
        local[outside] = (stop - start) + torch.searchsorted(others, src[outside])
        dst = torch.repeat_interleave(torch.arange(stop - start),
                                      self.colptr[start:stop + 1].diff())
        return NeighbourhoodBatch(torch.cat([torch.arange(start, stop), others]),
                                  torch.stack([local, dst]),
                                  self.type_of(self.edge_id[lo:hi]), stop - start)
