r"""R-GCN's convolution computed from the edges (:class:`EdgewiseRGCNConv`),
and the per-group mean weights it shares with CompGCN's."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch_geometric.nn import RGCNConv
from torch_geometric.utils import scatter

from native_pyg.kernels.autocast import cpu_autocast_enabled
from native_pyg.kernels.weighted_bag import weighted_bag

__all__ = ['EdgewiseRGCNConv', 'group_mean_weights']


def group_mean_weights(group: Tensor, num_groups: int, dtype: torch.dtype) -> Tensor:
    """``[E]`` weights ``1 / |group|`` of each edge's group, so that summing
    weighted messages gives the mean over each group's edges (CompGCN's
    direction groups). Counted over the groups present when there are more
    groups than edges (groups by node and edge type on a sampled subgraph
    would be a few GB of counts at 1,000 edge types, nearly all empty)."""
    if num_groups > group.numel():
        _, inverse, count = torch.unique(group, return_inverse=True, return_counts=True)
        return count.to(dtype).reciprocal()[inverse]
    count = scatter(torch.ones_like(group, dtype=dtype), group, 0, dim_size=num_groups,
                    reduce='sum')
    return count.clamp(min=1).reciprocal()[group]


#: entity-relation compositions :math:`\phi(\mathbf{x}_u, \mathbf{z}_r)` of CompGCN


class EdgewiseRGCNConv(RGCNConv):
    r"""PyG's :class:`~torch_geometric.nn.conv.RGCNConv` (same parameters,
    same output, mean aggregation per relation) computed from the edges
    instead of multiplying all :math:`N` nodes by each relation's weight.
    Without pyg-lib's ``segment_matmul``, :class:`RGCNConv` costs
    :math:`O(R \cdot N \cdot C^2)` per layer (about 67 GFLOP for MKG-Y's
    :math:`2R = 56` edge types at :math:`C = 200`). This takes the cheaper
    of two exact ways:

    * each (relation :math:`r`, destination :math:`v`) group's mean input is
      multiplied once by :math:`\mathbf{W}_r` (one product per relation
      present), :math:`O(G \cdot C^2)` for :math:`G` groups; on MKG-Y most
      nodes are reached by one or two relations (:math:`G \approx 22{,}800`
      against :math:`4 \times 14{,}400` basis rows);
    * with ``num_bases`` :math:`B` and :math:`G \geq B \cdot N` (DB15K),
      or on a GPU or under bf16 autocast (few large products beat many
      small ones there), each destination sums its edges' weighted basis
      products :math:`a_{rb} \mathbf{V}_b \mathbf{x}_u /
      |\mathcal{N}_r(v)|` as one weighted embedding bag
      (:func:`~native_pyg.kernels.weighted_bag.weighted_bag`, no ``[E, B, C]``
      message tensor), :math:`O(B \cdot N \cdot C^2 + E \cdot B \cdot C)`.

    .. math::
        \mathbf{x}^{\prime}_v = \mathbf{W}_0 \mathbf{x}_v + \sum_{r}
        \frac{1}{|\mathcal{N}_r(v)|} \sum_{u \in \mathcal{N}_r(v)}
        \mathbf{W}_r \mathbf{x}_u + \mathbf{b},
        \qquad \mathbf{W}_r = \sum_b a_{rb} \mathbf{V}_b \text{ (bases)}.

    Args: as :class:`~torch_geometric.nn.conv.RGCNConv` (float node
    features, ``aggr='mean'``).

    ``forward(x, edge_index, edge_type, num_targets=None)``: with
    ``num_targets`` :math:`T` the graph is bipartite: ``x`` holds the source
    nodes, of which the first :math:`T` are the targets, every edge ends in
    a target (``edge_index[1] < T``), and only the ``[T, F_out]`` target rows
    are computed (as in a 1-hop subgraph of
    :class:`~torch_geometric.loader.NeighborLoader`).
    """
    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor,
                num_targets: Optional[int] = None) -> Tensor:
        src, dst = edge_index
        num_dst = x.size(0) if num_targets is None else int(num_targets)
        # the (relation, destination) groups whose mean each message is, ordered by relation
        key = edge_type * num_dst + dst
        order = torch.argsort(key, stable=True)
        groups, counts = torch.unique_consecutive(key[order], return_counts=True)
        norm = counts.to(x.dtype).reciprocal().repeat_interleave(counts)  # 1/|N_r(v)|, key order
        if self.num_bases is not None and not (groups.numel() < self.num_bases * num_dst
                                               and _small_products_pay(x)):
            by_edge = torch.empty_like(norm).index_put_((order,), norm)  # the edges' order
            out = self._basis_messages(x, src, dst, edge_type, by_edge, num_dst)
        else:
            out = self._group_messages(x, src[order], norm, groups, counts, num_dst)
        if self.root is not None:
            out = out + (x if num_targets is None else x[:num_dst]) @ self.root
        if self.bias is not None:
            out = out + self.bias
        return out

    def _basis_messages(self, x: Tensor, src: Tensor, dst: Tensor, edge_type: Tensor,
                        norm: Tensor, num_dst: int) -> Tensor:
        # each destination sums its edges' a_{rb} / |N_r(v)| weighted rows as one bag:
        # no [E, B, C] messages. With fewer destinations than sources (a trimmed
        # layer), the inputs are summed per (destination, basis) first and multiplied
        # once, [num_dst, B * C_in] @ [B * C_in, C_out]; otherwise x V_b is computed
        # once per node and basis and its rows summed.
        num_bases, num_edges = self.num_bases, src.numel()
        order = torch.argsort(dst, stable=True)
        counts = torch.bincount(dst, minlength=num_dst)
        coef = (self.comp[edge_type[order]] * norm[order].unsqueeze(1)).to(x.dtype)  # [E, B]
        basis = torch.arange(num_bases, device=x.device)
        if num_dst < x.size(0):
            start = counts.cumsum(0) - counts
            d = dst[order]
            # entry (edge e, basis b) goes to bag (d_e, b), bags ordered by destination, then basis
            pos = (num_bases * start[d] + torch.arange(num_edges, device=x.device)
                   - start[d]).unsqueeze(1) + basis * counts[d].unsqueeze(1)
            perm = torch.empty_like(pos).view(-1)
            perm[pos.view(-1)] = torch.arange(perm.numel(), device=x.device)
            rows = src[order].repeat_interleave(num_bases)[perm]
            offsets = (num_bases * start).unsqueeze(1) + basis * counts.unsqueeze(1)
            agg = weighted_bag(x, rows, coef.view(-1)[perm], offsets.view(-1))
            return agg.view(num_dst, -1) @ self.weight.reshape(-1, self.out_channels)
        bases = self.weight.permute(1, 0, 2).reshape(self.in_channels_l, -1)
        xb = (x @ bases).view(x.size(0) * num_bases, self.out_channels)
        rows = (src[order].unsqueeze(1) * num_bases + basis).view(-1)
        offsets = torch.zeros(num_dst, dtype=torch.long, device=x.device)
        offsets[1:] = counts.cumsum(0)[:-1] * num_bases
        # under bf16 autocast xb is bf16, and the bag's weights must match it
        return weighted_bag(xb, rows, coef.view(-1).to(xb.dtype), offsets)

    def _group_messages(self, x: Tensor, src: Tensor, norm: Tensor, groups: Tensor,
                        counts: Tensor, num_dst: int) -> Tensor:
        # each (relation r, destination v) group's mean input, multiplied once by W_r
        # (one product per relation), then summed per destination: O(G * C^2) for G
        # groups, against O(B * N * C^2) for the bases' products when G < B * N (on
        # MKG-Y most nodes are reached by one or two relations: G = 22,800 against
        # 4 x 14,400) and O(E * C^2) per edge
        if groups.numel() == 0:
            return x.new_zeros(num_dst, self.out_channels)
        starts = counts.cumsum(0) - counts
        mean = weighted_bag(x, src, norm, starts)
        rel = torch.div(groups, num_dst, rounding_mode='floor')
        types, sizes = torch.unique_consecutive(rel, return_counts=True)
        if self.num_bases is not None:  # W_r = sum_b a_rb V_b, for the relations present
            weight = torch.einsum('tb,bio->tio', self.comp[types], self.weight).unbind(0)
        else:  # views of the relations' weights (no copy of all of them; one backward)
            every = self.weight.unbind(0)
            weight = [every[r] for r in types.tolist()]
        parts = []
        for xr, w in zip(mean.split(sizes.tolist()), weight):
            if self.num_blocks is not None:
                xr = xr.view(-1, self.num_blocks, xr.size(1) // self.num_blocks)
                xr = torch.einsum('abc,bcd->abd', xr, w).reshape(-1, self.out_channels)
            else:
                xr = xr @ w
            parts.append(xr)
        return scatter(torch.cat(parts), groups - rel * num_dst, 0, dim_size=num_dst,
                       reduce='sum')


def _small_products_pay(x: Tensor) -> bool:
    """Whether many small products (one per relation) beat a few large ones
    with the same rows: on CPUs in full precision. Under bf16 autocast large
    CPU products gain much more than the groups' small ones (measured in
    ``docs/benchmarks.md``); on GPUs each small product is a kernel launch,
    so the bases' path is kept there."""
    return x.device.type == 'cpu' and not cpu_autocast_enabled()
