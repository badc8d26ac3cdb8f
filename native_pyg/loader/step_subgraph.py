r"""The subgraph one training step encodes (see :meth:`NativE.subgraph
<native_pyg.nn.NativE.subgraph>`): its nodes' global ids, its local message
edges and the feature rows fetched for its nodes."""
from __future__ import annotations

import inspect
from typing import List, Mapping, Optional

import torch
from torch import Tensor

from native_pyg.loader.neighbourhood import local_index


class StepSubgraph:
    r"""A (sampled) subgraph of the training graph: nodes ``n_id`` (global
    entity ids), local ``edge_index`` / ``edge_type`` (inverse edges
    included) and, per modality, feature rows ``[n, d_m]`` and masks ``[n]``
    of the nodes, or of its first nodes only (the seeds), e.g. fetched from a
    feature store by the loader.

    It answers :meth:`rows` / :meth:`mask` by global entity id like
    :class:`~native_pyg.nn.entity_inputs.EntityInputs`: from the fetched
    rows where it has them, else from ``inputs``. Under ``missing='random'``
    the fixed random rows of ``inputs`` are always used. :attr:`structure`
    holds the encoder's output over the subgraph once computed
    (:meth:`encode`).

    With the per-hop sizes of a sampled subgraph (nodes and edges ordered by
    hop, seeds first, see :func:`~native_pyg.loader.neighbor_loader.hop_sizes`), an
    encoder whose ``forward`` takes PyG's ``num_sampled_nodes_per_hop`` and
    ``num_sampled_edges_per_hop`` (e.g.
    :class:`~native_pyg.nn.gnn.LayerwiseEncoder`) computes each layer only
    for the nodes later layers still need, and its output holds the seeds'
    rows only: every entity a step scores is a seed.

    Args:
        inputs (EntityInputs): The model's entity inputs.
        n_id (torch.Tensor): ``[n]`` global ids of the nodes.
        edge_index (torch.Tensor): ``[2, E]`` local edges.
        edge_type (torch.Tensor): ``[E]`` edge types in :math:`[0, 2R)`.
        x_dict (dict, optional): Modality to fetched rows ``[n, d_m]``.
            (default: :obj:`None`)
        mask_dict (dict, optional): Modality to fetched masks ``[n]``.
            (default: :obj:`None`)
        num_sampled_nodes (list[int], optional): Nodes per hop, seeds first.
            (default: :obj:`None`)
        num_sampled_edges (list[int], optional): Edges per hop.
            (default: :obj:`None`)
    """

    def __init__(self, inputs: EntityInputs, n_id: Tensor, edge_index: Tensor,
                 edge_type: Tensor, x_dict: Optional[Mapping[str, Tensor]] = None,
                 mask_dict: Optional[Mapping[str, Tensor]] = None,
                 num_sampled_nodes: Optional[List[int]] = None,
                 num_sampled_edges: Optional[List[int]] = None):
        device = inputs.device
        self.inputs = inputs
        self.n_id = torch.as_tensor(n_id, device=device).long().view(-1)
        self.edge_index = torch.as_tensor(edge_index, device=device).long()
        self.edge_type = torch.as_tensor(edge_type, device=device).long()
        self.local = local_index(self.n_id, inputs.num_entities)
        fetched = not inputs.missing.drawn
        self.x_dict = {m: torch.as_tensor(x).to(device)
                       for m, x in (x_dict or {}).items()} if fetched else {}
        self.mask_dict = {m: torch.as_tensor(k).to(device).bool()
                          for m, k in (mask_dict or {}).items()} if fetched else {}
        if (num_sampled_nodes is None) != (num_sampled_edges is None):
            raise ValueError("give both num_sampled_nodes and num_sampled_edges, or neither")
        if num_sampled_nodes is not None and (
                sum(num_sampled_nodes) != self.n_id.numel()
                or sum(num_sampled_edges) != self.edge_type.numel()
                or len(num_sampled_nodes) != len(num_sampled_edges) + 1):
            raise ValueError(f"per-hop sizes {list(num_sampled_nodes)} nodes and "
                             f"{list(num_sampled_edges)} edges do not add up to the subgraph's "
                             f"{self.n_id.numel()} nodes and {self.edge_type.numel()} edges")
        self.num_sampled_nodes, self.num_sampled_edges = num_sampled_nodes, num_sampled_edges
        self.structure: Optional[Tensor] = None

    def to_local(self, entity_index: Tensor) -> Tensor:
        """Rows of ``n_id`` of the given global entity ids (all must be nodes)."""
        out = self.local[entity_index]
        if bool((out < 0).any()):
            raise ValueError("an entity of the batch is not a node of the active subgraph "
                             "(its sampled neighbourhood must contain every scored entity)")
        return out

    def encode(self, encoder: torch.nn.Module, x: Tensor) -> Tensor:
        """The encoder's output over the subgraph from node inputs ``x``
        ``[n, De]``, trimmed per layer where the encoder and the per-hop sizes
        allow (then ``[seeds, De]``); kept in :attr:`structure`."""
        if self.num_sampled_nodes is not None and _takes_hop_sizes(encoder):
            self.structure = encoder(x, self.edge_index, self.edge_type,
                                     num_sampled_nodes_per_hop=self.num_sampled_nodes,
                                     num_sampled_edges_per_hop=self.num_sampled_edges)
        else:
            self.structure = encoder(x, self.edge_index, self.edge_type)
        return self.structure

    def structure_of(self, entity_index: Tensor) -> Tensor:
        """``[U, De]`` rows of :attr:`structure` of the given global entity ids."""
        local = self.to_local(entity_index)
        if local.numel() and int(local.max()) >= self.structure.size(0):
            raise ValueError("an entity of the batch is not a seed of the active subgraph, and "
                             "the encoder computed the seeds' rows only (trimmed per hop)")
        return self.structure[local]

    def _fetched(self, modality: str, index: Optional[Tensor]) -> Optional[Tensor]:
        """Rows of the fetched ones for ``index``, or ``None`` if not all were fetched."""
        if index is None or modality not in self.x_dict:
            return None
        local = self.to_local(index)
        if local.numel() and int(local.max()) >= self.x_dict[modality].size(0):
            return None
        return local

    def rows(self, modality: str, index: Optional[Tensor] = None) -> Tensor:
        """``[U, d_m]`` feature rows of the entities ``index``: those fetched
        in a narrower float dtype (float16 from a disk store) as fetched,
        others in the model's."""
        local = self._fetched(modality, index)
        if local is None:
            return self.inputs.rows(modality, index)
        x = self.x_dict[modality][local]
        # the dtype without reading rows: a store's rows(m) would read every row
        dtype = self.inputs.feature_dtype(modality)
        # narrower float rows (float16 from a disk store) stay so: the projection casts
        if x.is_floating_point() and dtype.is_floating_point and \
                x.dtype.itemsize < dtype.itemsize:
            return x
        return x.to(dtype)

    def mask(self, modality: str, index: Optional[Tensor] = None) -> Tensor:
        """``[U]`` presence of ``modality`` for the entities ``index``."""
        local = self._fetched(modality, index)
        return self.inputs.mask(modality, index) if local is None else self.mask_dict[modality][local]

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(nodes={self.n_id.numel()}, '
                f'edges={self.edge_index.size(1)}, fetched={sorted(self.x_dict)})')


def _takes_hop_sizes(encoder: torch.nn.Module) -> bool:
    """Whether ``encoder.forward`` takes PyG's per-hop size arguments."""
    try:
        params = inspect.signature(encoder.forward).parameters
    except (TypeError, ValueError):  # e.g. a builtin or scripted forward
        return False
    return 'num_sampled_nodes_per_hop' in params and 'num_sampled_edges_per_hop' in params
