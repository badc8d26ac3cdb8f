r"""Relational GNN encoders of the structural modality: R-GCN and CompGCN.

A structural encoder maps the learnable entity table of the nodes of a
graph to structural embeddings,
``encoder(x [n, De], edge_index [2, E], edge_type [E]) -> [n, De]``, where
the graph already holds **inverse edges**: every training triple
:math:`(h, r, t)` is the edge :math:`h \to t` of type :math:`r` and the edge
:math:`t \to h` of type :math:`r + R` (:func:`add_inverse_edges`), so
information flows both ways and :math:`2R` relation types are seen.
**Self-loops** are not edges: each layer has its own self-connection weight
(R-GCN's root weight, CompGCN's loop weight and loop relation). Any
``torch.nn.Module`` with that ``forward`` signature can be passed to
:class:`~native_pyg.nn.NativE` as ``encoder``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.inits import glorot, zeros

from native_pyg.data.relations import add_inverse_edges  # noqa: F401 (re-exported)
from native_pyg.kernels.activations import tanh
from native_pyg.nn.rgcn_conv import EdgewiseRGCNConv, group_mean_weights

__all__ = ['circular_correlation', 'group_mean_weights', 'COMPOSITIONS', 'CompGCNConv',
           'EdgewiseRGCNConv', 'LayerwiseEncoder', 'RGCNEncoder', 'CompGCNEncoder',
           'STRUCTURAL_ENCODERS', 'add_inverse_edges']


def circular_correlation(a: Tensor, b: Tensor) -> Tensor:
    r""":math:`(\mathbf{a} \star \mathbf{b})_k = \sum_i a_i\, b_{(i + k) \bmod d}`
    over the last dimension, via the real FFT."""
    d = a.size(-1)
    if a.numel() == 0 or b.numel() == 0:  # e.g. no edges (MKL's FFT refuses empty input)
        return a.new_zeros(torch.broadcast_shapes(a.shape, b.shape))
    return torch.fft.irfft(torch.conj(torch.fft.rfft(a.float(), dim=-1))
                           * torch.fft.rfft(b.float(), dim=-1), n=d, dim=-1).to(a.dtype)


COMPOSITIONS = {
    'sub': lambda x, z: x - z,
    'mult': lambda x, z: x * z,
    'corr': circular_correlation,
}


class CompGCNConv(MessagePassing):
    r"""The composition-based relational graph convolution of CompGCN
    ("Composition-based Multi-Relational Graph Convolutional Networks",
    ICLR 2020),

    .. math::
        \mathbf{x}^{\prime}_v = \frac{1}{3}\Big(
        \frac{1}{|\mathcal{N}^{\rightarrow}_v|}
        \sum_{(u, r) \in \mathcal{N}^{\rightarrow}_v}
        \mathbf{W}_{\mathrm{in}}\,\phi(\mathbf{x}_u, \mathbf{z}_r)
        + \frac{1}{|\mathcal{N}^{\leftarrow}_v|}
        \sum_{(u, r) \in \mathcal{N}^{\leftarrow}_v}
        \mathbf{W}_{\mathrm{out}}\,\phi(\mathbf{x}_u, \mathbf{z}_r)
        + \mathbf{W}_{\mathrm{loop}}\,\phi(\mathbf{x}_v, \mathbf{z}_{\mathrm{loop}})
        \Big) + \mathbf{b},
        \qquad \mathbf{z}^{\prime}_r = \mathbf{W}_{\mathrm{rel}}\,\mathbf{z}_r,

    where :math:`\mathcal{N}^{\rightarrow}_v` holds the incoming edges of
    original relations (type :math:`< R`), :math:`\mathcal{N}^{\leftarrow}_v`
    those of inverse relations (type :math:`\geq R`), and :math:`\phi` is
    ``'sub'`` (:math:`\mathbf{x} - \mathbf{z}`), ``'mult'``
    (:math:`\mathbf{x} \odot \mathbf{z}`) or ``'corr'`` (circular
    correlation). Each mean runs over the edges present, so a sampled
    neighbourhood gives an estimate of the full one.

    Args:
        in_channels (int): Size of each input entity and relation embedding.
        out_channels (int): Size of each output embedding.
        num_relations (int): Number :math:`R` of original relations (the
            graph holds :math:`2R` edge types, see :func:`add_inverse_edges`).
        composition (str, optional): ``'sub'``, ``'mult'`` or ``'corr'``.
            (default: ``'sub'``)
        bias (bool, optional): Learn :math:`\mathbf{b}`. (default: :obj:`True`)

    Shapes:
        - **input:** entity embeddings :math:`(|\mathcal{V}|, F_{in})`,
          relation embeddings :math:`(2R, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`, edge types :math:`(|\mathcal{E}|)`
        - **output:** ``(entities (|V|, F_out), relations (2R, F_out))``
    """
    def __init__(self, in_channels: int, out_channels: int, num_relations: int,
                 composition: str = 'sub', bias: bool = True):
        super().__init__(aggr='add')
        if composition not in COMPOSITIONS:
            raise ValueError(f"unknown composition {composition!r}; expected one of "
                             f"{sorted(COMPOSITIONS)}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.num_relations, self.composition = int(num_relations), composition
        self.weight_in = torch.nn.Parameter(torch.empty(in_channels, out_channels))
        self.weight_out = torch.nn.Parameter(torch.empty(in_channels, out_channels))
        self.weight_loop = torch.nn.Parameter(torch.empty(in_channels, out_channels))
        self.weight_rel = torch.nn.Parameter(torch.empty(in_channels, out_channels))
        self.loop_rel = torch.nn.Parameter(torch.empty(1, in_channels))
        self.bias = torch.nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for w in (self.weight_in, self.weight_out, self.weight_loop, self.weight_rel,
                  self.loop_rel):
            glorot(w)
        zeros(self.bias)

    def forward(self, x: Tensor, rel: Tensor, edge_index: Tensor, edge_type: Tensor,
                num_targets: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """``(entities, relations)``: :meth:`forward_entities` and
        :meth:`forward_relations`."""
        return (self.forward_entities(x, rel, edge_index, edge_type, num_targets),
                self.forward_relations(rel))

    def forward_entities(self, x: Tensor, rel: Tensor, edge_index: Tensor, edge_type: Tensor,
                         num_targets: Optional[int] = None) -> Tensor:
        r"""The entity update :math:`\mathbf{x}^{\prime}`. With ``num_targets``
        :math:`B` the graph is bipartite: ``x`` holds the source nodes, of
        which the first :math:`B` are the targets, every edge ends in a
        target (``edge_index[1] < B``), and only the ``[B, F_out]`` target
        rows are computed (as in a 1-hop subgraph of
        :class:`~torch_geometric.loader.NeighborLoader`)."""
        num_dst = x.size(0) if num_targets is None else int(num_targets)
        x_dst = x if num_targets is None else x[:num_dst]
        size = None if num_targets is None else (x.size(0), num_dst)
        inverse = edge_type >= self.num_relations
        # mean per destination and direction: each edge weighs 1 / its group's size
        norm = group_mean_weights(edge_index[1] * 2 + inverse.long(), 2 * num_dst, x.dtype)
        out = self.propagate(edge_index, x=x, rel=rel, edge_type=edge_type, inverse=inverse,
                             norm=norm, size=size)
        loop = COMPOSITIONS[self.composition](x_dst, self.loop_rel) @ self.weight_loop
        out = (out + loop) / 3
        if self.bias is not None:
            out = out + self.bias
        return out

    def forward_relations(self, rel: Tensor) -> Tensor:
        r"""The relation update :math:`\mathbf{z}^{\prime}_r =
        \mathbf{W}_{\mathrm{rel}}\,\mathbf{z}_r` (independent of the nodes)."""
        return rel @ self.weight_rel

    def message(self, x_j: Tensor, rel: Tensor, edge_type: Tensor, inverse: Tensor,
                norm: Tensor) -> Tensor:
        comp = COMPOSITIONS[self.composition](x_j, rel[edge_type])
        out = comp.new_empty(comp.size(0), self.out_channels)
        fwd, inv = (~inverse).nonzero().view(-1), inverse.nonzero().view(-1)
        out[fwd] = comp[fwd] @ self.weight_in
        out[inv] = comp[inv] @ self.weight_out
        return out * norm.unsqueeze(-1)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, {self.out_channels}, '
                f'num_relations={self.num_relations}, composition={self.composition!r})')


class LayerwiseEncoder(torch.nn.Module):
    r"""Base of the structural encoders that expose their layers one at a
    time, so that :func:`~native_pyg.nn.layerwise.layerwise_inference` can
    compute layer :math:`l` for all nodes, batch by batch, before layer
    :math:`l + 1`. A subclass sets :attr:`num_layers` and implements

    * :meth:`initial_state` and :meth:`next_state`: the node-independent
      state each layer reads (CompGCN's relation embeddings; ``None`` for
      R-GCN), computed once per layer, not once per batch;
    * :meth:`layer_forward`: layer ``i`` (input dropout, convolution,
      activation unless last) from its input ``x`` and ``state``.

    :meth:`forward` is the full-graph pass written with them,

    .. math::
        \mathbf{x}^{(l+1)} = f_l\big(\mathbf{x}^{(l)}, \mathcal{E},
        s^{(l)}\big), \qquad s^{(l+1)} = g_l\big(s^{(l)}\big).
    """
    num_layers: int

    def initial_state(self) -> Any:
        """The state layer 0 reads. (default: :obj:`None`)"""
        return None

    def next_state(self, i: int, state: Any) -> Any:
        """The state layer ``i + 1`` reads, from the one layer ``i`` read.
        (default: :obj:`None`)"""
        return None

    def layer_states(self) -> List[Any]:
        """The states of layers ``0 .. num_layers - 1``."""
        states = [self.initial_state()]
        for i in range(self.num_layers - 1):
            states.append(self.next_state(i, states[-1]))
        return states

    def layer_forward(self, i: int, x: Tensor, edge_index: Tensor, edge_type: Tensor,
                      state: Any = None, num_targets: Optional[int] = None) -> Tensor:
        r"""Layer ``i`` over a graph whose nodes are the rows of ``x``; with
        ``num_targets`` :math:`B` only the first :math:`B` rows (the
        targets, which every edge must end in) are computed and returned."""
        raise NotImplementedError

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor,
                num_sampled_nodes_per_hop: Optional[List[int]] = None,
                num_sampled_edges_per_hop: Optional[List[int]] = None) -> Tensor:
        r"""The full pass over the graph. With the per-hop sizes of a sampled
        subgraph (nodes ordered by hop, seeds first, and edges ordered by
        hop, as PyG's samplers give them), each layer is trimmed as PyG's
        :func:`~torch_geometric.utils.trim_to_layer` does, further: layer
        :math:`l` of :math:`L` computes only the nodes within
        :math:`L - 1 - l` hops of the seeds, from the edges into them, so the
        output is ``[seeds, De]`` and equals the untrimmed pass on the seeds
        (the nodes of the outer hops only feed inner ones)."""
        if num_sampled_nodes_per_hop is None:
            for i, state in enumerate(self.layer_states()):
                x = self.layer_forward(i, x, edge_index, edge_type, state)
            return x
        nodes = torch.tensor(num_sampled_nodes_per_hop).cumsum(0).tolist()
        edges = [0, *torch.tensor(num_sampled_edges_per_hop).cumsum(0).tolist()]
        hops = len(edges) - 1
        for i, state in enumerate(self.layer_states()):
            inner = min(hops, self.num_layers - i)  # input: nodes within `inner` hops
            x = x[:nodes[inner]]
            x = self.layer_forward(i, x, edge_index[:, :edges[inner]], edge_type[:edges[inner]],
                                   state, num_targets=nodes[min(hops, self.num_layers - 1 - i)])
        return x

    def _check_layer(self, i: int) -> int:
        if not 0 <= i < self.num_layers:
            raise IndexError(f"layer {i} out of range for {self.num_layers} layers")
        return i

    def _activate(self, i: int, x: Tensor) -> Tensor:
        """:math:`\tanh` between layers, none after the last."""
        return tanh(x) if i < self.num_layers - 1 else x


class RGCNEncoder(LayerwiseEncoder):
    r"""A stack of R-GCN layers (Schlichtkrull et al., 2018; PyG's
    :class:`~torch_geometric.nn.conv.RGCNConv`, computed per edge by
    :class:`EdgewiseRGCNConv`) over the graph with inverse edges,

    .. math::
        \mathbf{x}^{(l+1)}_v = \sigma\Big(\mathbf{W}^{(l)}_0 \mathbf{x}^{(l)}_v
        + \sum_{r=1}^{2R} \frac{1}{|\mathcal{N}_r(v)|}
        \sum_{u \in \mathcal{N}_r(v)} \mathbf{W}^{(l)}_r \mathbf{x}^{(l)}_u\Big),

    with :math:`\sigma = \tanh` between layers (none after the last, so the
    output lives in the scorer's embedding space) and dropout on each
    layer's input. :math:`\mathbf{W}_0` is the self-loop. ``num_bases``
    (basis decomposition, :math:`\mathbf{W}_r = \sum_b a_{rb} \mathbf{V}_b`)
    or ``num_blocks`` (block-diagonal) keeps the :math:`2R` weights small.

    Args:
        channels (int): Embedding size (the scorer's entity size).
        num_relations (int): Number :math:`R` of original relations.
        num_layers (int, optional): Number of layers. (default: :obj:`2`)
        num_bases (int, optional): Bases per layer. (default: :obj:`None`)
        num_blocks (int, optional): Blocks per layer. (default: :obj:`None`)
        dropout (float, optional): Dropout probability. (default: :obj:`0.0`)
    """
    def __init__(self, channels: int, num_relations: int, num_layers: int = 2,
                 num_bases: Optional[int] = None, num_blocks: Optional[int] = None,
                 dropout: float = 0.0):
        super().__init__()
        _check_layers(num_layers, dropout)
        if num_blocks is not None and channels % num_blocks:
            raise ValueError(f"num_blocks={num_blocks} must divide the embedding size {channels}")
        self.channels, self.num_relations = int(channels), int(num_relations)
        self.num_layers, self.dropout = int(num_layers), float(dropout)
        self.convs = torch.nn.ModuleList([
            EdgewiseRGCNConv(channels, channels, 2 * num_relations, num_bases=num_bases,
                             num_blocks=num_blocks, aggr='mean') for _ in range(num_layers)])

    def reset_parameters(self):
        for conv in self.convs:
            conv.reset_parameters()

    def layer_forward(self, i: int, x: Tensor, edge_index: Tensor, edge_type: Tensor,
                      state: Any = None, num_targets: Optional[int] = None) -> Tensor:
        r"""Layer ``i``: dropout, :class:`EdgewiseRGCNConv`, :math:`\tanh`
        unless last (``state`` is unused: R-GCN has none); see
        :meth:`LayerwiseEncoder.layer_forward`."""
        x = F.dropout(x, p=self.dropout, training=self.training)
        x = self.convs[self._check_layer(i)](x, edge_index, edge_type, num_targets=num_targets)
        return self._activate(i, x)

    def __repr__(self) -> str:
        conv = self.convs[0]
        return (f'{self.__class__.__name__}({self.channels}, num_relations={self.num_relations}, '
                f'num_layers={self.num_layers}, num_bases={conv.num_bases}, '
                f'num_blocks={conv.num_blocks}, dropout={self.dropout})')


class CompGCNEncoder(LayerwiseEncoder):
    r"""A stack of :class:`CompGCNConv` layers over the graph with inverse
    edges. The initial relation embeddings :math:`\mathbf{z}_r` of the
    :math:`2R` edge types are the encoder's own (the scorer keeps its
    relation embeddings); each layer updates them by
    :math:`\mathbf{W}_{\mathrm{rel}}`. :math:`\tanh` between layers, none
    after the last; dropout on each layer's input.

    Args:
        channels (int): Embedding size (the scorer's entity size).
        num_relations (int): Number :math:`R` of original relations.
        num_layers (int, optional): Number of layers. (default: :obj:`2`)
        composition (str, optional): ``'sub'``, ``'mult'`` or ``'corr'``.
            (default: ``'sub'``)
        dropout (float, optional): Dropout probability. (default: :obj:`0.0`)
    """
    def __init__(self, channels: int, num_relations: int, num_layers: int = 2,
                 composition: str = 'sub', dropout: float = 0.0):
        super().__init__()
        _check_layers(num_layers, dropout)
        self.channels, self.num_relations = int(channels), int(num_relations)
        self.num_layers, self.dropout, self.composition = int(num_layers), float(dropout), composition
        self.rel = torch.nn.Parameter(torch.empty(2 * num_relations, channels))
        self.convs = torch.nn.ModuleList([
            CompGCNConv(channels, channels, num_relations, composition)
            for _ in range(num_layers)])
        self.reset_parameters()

    def reset_parameters(self):
        glorot(self.rel)
        for conv in self.convs:
            conv.reset_parameters()

    def initial_state(self) -> Tensor:
        """``[2R, De]``: the encoder's own relation embeddings, read by layer 0."""
        return self.rel

    def next_state(self, i: int, state: Tensor) -> Tensor:
        r"""The relation embeddings layer ``i + 1`` reads:
        :math:`\tanh(\mathbf{W}^{(i)}_{\mathrm{rel}}\,\mathbf{z}^{(i)}_r)`."""
        return torch.tanh(self.convs[self._check_layer(i)].forward_relations(state))

    def layer_forward(self, i: int, x: Tensor, edge_index: Tensor, edge_type: Tensor,
                      state: Optional[Tensor] = None,
                      num_targets: Optional[int] = None) -> Tensor:
        r"""Layer ``i``: dropout, :meth:`CompGCNConv.forward_entities` with
        the relation embeddings ``state`` (``None``: computed from
        :meth:`layer_states`), :math:`\tanh` unless last; see
        :meth:`LayerwiseEncoder.layer_forward`."""
        conv = self.convs[self._check_layer(i)]
        if state is None:
            state = self.layer_states()[i]
        x = F.dropout(x, p=self.dropout, training=self.training)
        return self._activate(i, conv.forward_entities(x, state, edge_index, edge_type,
                                                       num_targets))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.channels}, num_relations={self.num_relations}, '
                f'num_layers={self.num_layers}, composition={self.composition!r}, '
                f'dropout={self.dropout})')


def _check_layers(num_layers: int, dropout: float) -> None:
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


#: encoder name -> class, as ``model.encoder`` in the YAML config
#: structural encoders by name (``NativE(encoder='rgcn')``)
STRUCTURAL_ENCODERS: Dict[str, Type[torch.nn.Module]] = {'rgcn': RGCNEncoder,
                                                         'compgcn': CompGCNEncoder}
