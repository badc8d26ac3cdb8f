r"""Layer-wise mini-batch inference of the structural GNN encoders over all
entities, for graphs whose full-graph pass (every edge's message at once)
does not fit in memory."""
from __future__ import annotations

import os.path as osp
import shutil
import warnings
from typing import Any, Optional, Union

import torch
from torch import Tensor

#: what an encoder needs for layer-wise inference (see :class:`LayerwiseEncoder
#: <native_pyg.nn.gnn.LayerwiseEncoder>`)
LAYERWISE_API = ('num_layers', 'layer_states', 'layer_forward')


def missing_layerwise_api(encoder: Any) -> list:
    """The names of :data:`LAYERWISE_API` that ``encoder`` lacks (all of them
    for ``None``)."""
    return [a for a in LAYERWISE_API if not hasattr(encoder, a)]


@torch.no_grad()
def layerwise_inference(encoder: torch.nn.Module, x: Tensor, edge_index: Tensor,
                        edge_type: Tensor, num_nodes: Optional[int] = None,
                        batch_size: int = 65536, progress: bool = False,
                        device: Optional[Union[str, torch.device]] = None,
                        out: Optional[Tensor] = None, scratch: Optional[str] = None) -> Tensor:
    r"""The output ``[N, D]`` of a structural encoder over a whole graph,
    computed one layer at a time and, within a layer, one batch of target
    nodes at a time,

    .. math::
        \mathbf{X}^{(l+1)}[\mathcal{B}] = f_l\Big(\mathbf{X}^{(l)}\big[
        \mathcal{B} \cup \mathcal{N}(\mathcal{B})\big],\;
        \mathcal{E}_{\rightarrow \mathcal{B}},\; s^{(l)}\Big)
        \quad \text{for every batch } \mathcal{B} \subseteq \mathcal{V},
        \qquad l = 0, \dots, L - 1,

    with :math:`\mathbf{X}^{(0)} = ` ``x``, :math:`f_l` the encoder's layer
    :math:`l` (``encoder.layer_forward``), :math:`s^{(l)}` its
    node-independent state (``encoder.layer_states()``, e.g. CompGCN's
    relation embeddings, computed once per layer),
    :math:`\mathcal{N}(\mathcal{B})` the in-neighbours of the batch and
    :math:`\mathcal{E}_{\rightarrow \mathcal{B}}` **all** the edges ending
    in it. A layer's output at a node depends only on the previous layer's
    output at the node and its in-neighbours, over all its in-edges (R-GCN's
    mean per relation, CompGCN's mean per direction), so each batch's rows
    equal those of the full-graph pass ``encoder(x, edge_index, edge_type)``
    (up to float rounding). Peak memory is two layers' outputs
    (:math:`O(N \cdot D)`) plus one batch's 1-hop subgraph and its messages,
    instead of the messages of all :math:`|\mathcal{E}|` edges at once (and,
    unlike sampling :math:`L` hops per batch, no node is computed twice per
    layer).

    The batches come from PyG's :class:`~torch_geometric.loader.NeighborLoader`
    over all nodes in order (``num_neighbors=[-1]``: one hop, every
    in-neighbour), whose first ``batch_size`` subgraph nodes are the targets.
    The encoder runs in eval mode (no dropout; its mode is restored
    afterwards) and without autograd.

    Args:
        encoder (torch.nn.Module): A structural encoder with the per-layer
            API of :class:`~native_pyg.nn.gnn.LayerwiseEncoder`
            (:class:`~native_pyg.nn.gnn.RGCNEncoder`,
            :class:`~native_pyg.nn.gnn.CompGCNEncoder`).
        x (torch.Tensor): Input node features ``[N, F]``; the intermediate
            outputs are kept on its device (e.g. CPU while ``device`` is a
            GPU).
        edge_index (torch.Tensor): ``[2, E]`` edges (with inverse edges for
            the encoders here, see :func:`~native_pyg.nn.gnn.add_inverse_edges`);
            sampled on CPU.
        edge_type (torch.Tensor): ``[E]`` edge types.
        num_nodes (int, optional): :math:`N`. (default: ``x.size(0)``)
        batch_size (int, optional): Target nodes per batch.
            (default: :obj:`65536`)
        progress (bool, optional): Show a progress bar over layers
            :math:`\times` batches. (default: :obj:`False`)
        device (torch.device, optional): Where each batch is computed.
            (default: the encoder's parameters' device, else ``x``'s)
        out (torch.Tensor, optional): A preallocated ``[N, D]`` tensor (e.g.
            a :func:`torch.from_numpy` view of a :class:`numpy.memmap`) that
            receives the last layer's output and is returned.
            (default: :obj:`None`, a new tensor on ``x``'s device)
        scratch (str, optional): A directory where each intermediate
            layer's output is written a batch at a time
            (:class:`~native_pyg.data.feature_store.FeatureStoreWriter`,
            float32) and read back by row id for the next layer, instead of
            being held as an ``[N, D]`` tensor; removed when done.
            (default: :obj:`None`, in memory)

    Returns:
        torch.Tensor: ``[N, D]``, the last layer's output.
    """
    missing = missing_layerwise_api(encoder)
    if missing:
        raise TypeError(f"{type(encoder).__name__} lacks the per-layer API ({', '.join(missing)}) "
                        f"that layer-wise inference needs; see native_pyg.nn.gnn.LayerwiseEncoder")
    num_nodes = x.size(0) if num_nodes is None else int(num_nodes)
    if x.dim() != 2 or x.size(0) != num_nodes:
        raise ValueError(f"x must have shape [num_nodes={num_nodes}, F], got {tuple(x.shape)}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_type.shape != (edge_index.size(1),):
        raise ValueError(f"edge_type must have shape [E={edge_index.size(1)}], "
                         f"got {tuple(edge_type.shape)}")
    if edge_index.numel() and not 0 <= int(edge_index.min()) <= int(edge_index.max()) < num_nodes:
        raise ValueError(f"edge_index holds node ids outside [0, {num_nodes})")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if out is not None:
        if out.dim() != 2 or out.size(0) != num_nodes:
            raise ValueError(f"out must have shape [num_nodes={num_nodes}, D], "
                             f"got {tuple(out.shape)}")
        if num_nodes and out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            raise ValueError("out must not share memory with x (layers read x while writing)")
    if device is None:
        param = next(iter(encoder.parameters()), None)
        device = x.device if param is None else param.device
    device = torch.device(device)
    if num_nodes == 0:
        return out if out is not None else x.new_empty(0, x.size(1))

    loader = full_neighbour_loader(edge_index, edge_type, num_nodes, int(batch_size))
    num_layers = int(encoder.num_layers)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=num_layers * len(loader), desc='layer-wise inference', unit='batch')
    was_training = encoder.training
    encoder.eval()
    rows = _InMemoryRows(x)
    try:
        states = [_to(s, device) for s in encoder.layer_states()]
        for i, state in enumerate(states):
            last = i == num_layers - 1

            def outputs(i=i, state=state, rows=rows):
                for batch in loader:
                    b = int(batch.batch_size)
                    if batch.edge_index.numel() and int(batch.edge_index[1].max()) >= b:
                        raise RuntimeError("NeighborLoader returned edges that do not end in "
                                           "the batch's targets; layer-wise inference needs "
                                           "1-hop directional subgraphs")
                    h = encoder.layer_forward(i, rows.take(batch.n_id).to(device),
                                              batch.edge_index.to(device),
                                              batch.edge_type.to(device), state, num_targets=b)
                    if bar is not None:
                        bar.update(1)
                    yield batch.n_id[:b], h

            if scratch is not None and not last:
                rows = _DiskRows.write(osp.join(scratch, f'layer{i}'), num_nodes, outputs())
            else:
                nxt = out if last else None
                for targets, h in outputs():
                    if nxt is None:
                        nxt = rows.new_empty(num_nodes, h.size(1), h.dtype)
                    nxt[targets.to(nxt.device)] = h.to(nxt.device, nxt.dtype)
                rows = _InMemoryRows(nxt)
    finally:
        encoder.train(was_training)
        if bar is not None:
            bar.close()
        if scratch is not None:
            for i in range(num_layers):
                shutil.rmtree(osp.join(scratch, f'layer{i}'), ignore_errors=True)
    return rows.x


class _InMemoryRows:
    """A layer's output held as a tensor."""

    def __init__(self, x: Tensor):
        self.x = x

    def take(self, index: Tensor) -> Tensor:
        return self.x[index.to(self.x.device)]

    def new_empty(self, n: int, d: int, dtype) -> Tensor:
        return self.x.new_empty(n, d, dtype=dtype)


class _DiskRows:
    """A layer's output written to disk a batch at a time (the batches come
    in row order) and read back by row id, never held whole."""

    def __init__(self, store, device: torch.device):
        self.store, self.device = store, device
        self.x = None  # never the last layer: nothing to return

    @classmethod
    def write(cls, root: str, num_nodes: int, outputs) -> '_DiskRows':
        from native_pyg.data.feature_store import DiskFeatureStore, FeatureStoreWriter
        writer = FeatureStoreWriter(root, num_nodes, 'float32')
        expected = [0]
        device = [torch.device('cpu')]

        def chunks():
            for targets, h in outputs:
                start = expected[0]
                if not torch.equal(targets.cpu(), torch.arange(start, start + targets.numel())):
                    raise RuntimeError("layer-wise batches must come in row order to be "
                                       "written to disk")
                expected[0] += targets.numel()
                device[0] = h.device
                yield h.detach().float().cpu()

        writer.write('h', chunks(), masks=None)
        writer.close()
        return cls(DiskFeatureStore(root), device[0])

    def take(self, index: Tensor) -> Tensor:
        return self.store.get_tensor('h', 'x', index=index.cpu())

    def new_empty(self, n: int, d: int, dtype) -> Tensor:
        return torch.empty(n, d, dtype=dtype)


def full_neighbour_loader(edge_index: Tensor, edge_type: Tensor, num_nodes: int,
                          batch_size: int):
    r"""PyG's :class:`~torch_geometric.loader.NeighborLoader` over all
    ``num_nodes`` nodes in order, ``batch_size`` targets per batch, each
    batch the 1-hop subgraph of **all** in-edges of its targets
    (``num_neighbors=[-1]``), targets first, with the edges' ``edge_type``."""
    from torch_geometric.data import Data
    from torch_geometric.loader import NeighborLoader
    data = Data(edge_index=edge_index.detach().cpu(), edge_type=edge_type.detach().cpu(),
                num_nodes=num_nodes)
    with warnings.catch_warnings():  # PyG's advice to install pyg-lib, unavailable here
        warnings.filterwarnings('ignore', message=".*without a 'pyg-lib' installation")
        return NeighborLoader(data, num_neighbors=[-1], input_nodes=None,
                              batch_size=batch_size, shuffle=False,
                              subgraph_type='directional')


#: with ``scratch='auto'``, layer outputs larger than this go to disk
LAYER_SCRATCH_BYTES = 2 ** 30


def layerwise_structural_embeddings(model, batch_size: int = 65536, progress: bool = False,
                                    device: Optional[Union[str, torch.device]] = None,
                                    out: Optional[Tensor] = None,
                                    scratch: Optional[str] = 'auto') -> Tensor:
    r"""``[N, De]``: what ``model.structural_embeddings(None)`` of a
    :class:`~native_pyg.nn.NativE` with a structural encoder computes
    outside a :meth:`~native_pyg.nn.NativE.subgraph` context (the encoder
    over the whole training graph ``model.inputs.graph()``, from the entity
    table plus, under ``encoder_input='structure+modalities'``, the mean
    projected modality embedding), by :func:`layerwise_inference`. The input
    is built in chunks of ``batch_size`` entities; the encoder runs in eval
    mode. Arguments as :func:`layerwise_inference`; ``scratch='auto'``
    writes the intermediate layers to a temporary directory when one layer's
    output passes :data:`LAYER_SCRATCH_BYTES`, else keeps them in memory.
    """
    encoder = getattr(model, 'structural_encoder', None)
    if encoder is None:
        raise ValueError("layer-wise structural embeddings need a model with a structural "
                         "encoder (NativE(encoder=...)); without one they are "
                         "model.entity_emb.weight")
    with torch.no_grad():
        x = model.entity_emb.weight.detach()
        if model.encoder_input == 'structure+modalities' and model.feature_modalities:
            x = x.clone()
            step = max(int(batch_size), 1)
            for start in range(0, x.size(0), step):
                stop = min(start + step, x.size(0))
                x[start:stop] += model.projections.mean_embedding(
                    model.inputs, torch.arange(start, stop, device=x.device), x[start:stop],
                    masked=model.missing == 'mask')
    if scratch == 'auto':
        if x.size(0) * x.size(1) * 4 <= LAYER_SCRATCH_BYTES:
            scratch = None
        else:
            import tempfile
            with tempfile.TemporaryDirectory(prefix='native_pyg-layers-') as tmp:
                return layerwise_inference(encoder, x, *model.inputs.graph(),
                                           batch_size=batch_size, progress=progress,
                                           device=device, out=out, scratch=tmp)
    return layerwise_inference(encoder, x, *model.inputs.graph(), batch_size=batch_size,
                               progress=progress, device=device, out=out, scratch=scratch)


def _to(state: Any, device: torch.device) -> Any:
    return state.to(device) if isinstance(state, Tensor) else state
