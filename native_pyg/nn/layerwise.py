r"""Layer-wise mini-batch inference of the structural GNN encoders over all
entities, for graphs whose full-graph pass (every edge's message at once)
does not fit in memory."""
from __future__ import annotations

import os.path as osp
import shutil
import weakref
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Tuple, Union

import torch
from torch import Tensor

from native_pyg.loader.neighbourhood import InNeighbourhoods
from native_pyg.nn.modes import evaluating


def _check_edges(edge_index: Tensor, edge_type: Tensor, num_nodes: int) -> None:
    if edge_index is None or edge_type is None:
        raise ValueError("layer-wise inference needs edge_index and edge_type "
                         "(or neighbourhoods)")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_type.shape != (edge_index.size(1),):
        raise ValueError(f"edge_type must have shape [E={edge_index.size(1)}], "
                         f"got {tuple(edge_type.shape)}")
    if edge_index.numel() and not 0 <= int(edge_index.min()) <= int(edge_index.max()) < num_nodes:
        raise ValueError(f"edge_index holds node ids outside [0, {num_nodes})")


#: what an encoder needs for layer-wise inference (see :class:`LayerwiseEncoder
#: <native_pyg.nn.gnn.LayerwiseEncoder>`)
LAYERWISE_API = ('num_layers', 'layer_states', 'layer_forward')


def missing_layerwise_api(encoder: Any) -> list:
    """The names of :data:`LAYERWISE_API` that ``encoder`` lacks (all of them
    for ``None``)."""
    return [a for a in LAYERWISE_API if not hasattr(encoder, a)]


@torch.no_grad()
def layerwise_inference(encoder: torch.nn.Module, x: Tensor, edge_index: Optional[Tensor],
                        edge_type: Optional[Tensor], num_nodes: Optional[int] = None,
                        batch_size: int = 65536, progress: bool = False,
                        device: Optional[Union[str, torch.device]] = None,
                        out: Optional[Tensor] = None, scratch: Optional[str] = None,
                        neighbourhoods: Optional[InNeighbourhoods] = None) -> Tensor:
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

    The batches are consecutive targets with every in-edge, slices of the
    edges sorted by destination
    (:class:`~native_pyg.loader.neighbourhood.InNeighbourhoods`: what PyG's
    :class:`~torch_geometric.loader.NeighborLoader` gives with
    ``num_neighbors=[-1]``, without a second copy of the edges). The encoder
    runs in eval mode (no dropout; its mode is restored afterwards) and
    without autograd.

    Args:
        encoder (torch.nn.Module): A structural encoder with the per-layer
            API of :class:`~native_pyg.nn.gnn.LayerwiseEncoder`
            (:class:`~native_pyg.nn.gnn.RGCNEncoder`,
            :class:`~native_pyg.nn.gnn.CompGCNEncoder`).
        x (torch.Tensor or LayerRows): Input node features ``[N, F]``; the
            intermediate outputs are kept on its device (e.g. CPU while
            ``device`` is a GPU).
        edge_index (torch.Tensor): ``[2, E]`` edges (with inverse edges for
            the encoders here, see :func:`~native_pyg.nn.gnn.add_inverse_edges`);
            sorted on CPU. :obj:`None` with ``neighbourhoods``.
        edge_type (torch.Tensor): ``[E]`` edge types. :obj:`None` with
            ``neighbourhoods``.
        num_nodes (int, optional): :math:`N`. (default: ``x.size(0)``)
        batch_size (int, optional): Target nodes per batch, fewer where
            their in-edges would pass :data:`LAYER_EDGES` (the messages of a
            batch are a few ``[edges, D]`` tensors). (default: :obj:`65536`)
        progress (bool, optional): Show a progress bar over layers
            :math:`\times` batches. (default: :obj:`False`)
        device (torch.device, optional): Where each batch is computed.
            (default: the encoder's parameters' device, else ``x``'s)
        out (torch.Tensor, optional): A preallocated ``[N, D]`` tensor (e.g.
            a :func:`torch.from_numpy` view of a :class:`numpy.memmap`) that
            receives the last layer's output and is returned.
            (default: :obj:`None`, a new tensor on ``x``'s device)
        scratch (str, optional): A directory where each layer's output is
            written a batch at a time
            (:class:`~native_pyg.data.feature_store.FeatureStoreWriter`,
            float32) and read back by row id, instead of being held as an
            ``[N, D]`` tensor: the intermediate layers are removed when the
            next one is done, and the last one is returned as
            :class:`LayerRows` (unless ``out`` is given).
            (default: :obj:`None`, in memory)
        neighbourhoods (InNeighbourhoods, optional): The graph's in-edges
            already sorted by destination, instead of ``edge_index`` and
            ``edge_type`` (e.g. a training graph's, built from its triples
            without the inverse edges' arrays). (default: :obj:`None`)

    Returns:
        torch.Tensor or LayerRows: ``[N, D]``, the last layer's output.
    """
    missing = missing_layerwise_api(encoder)
    if missing:
        raise TypeError(f"{type(encoder).__name__} lacks the per-layer API ({', '.join(missing)}) "
                        f"that layer-wise inference needs; see native_pyg.nn.gnn.LayerwiseEncoder")
    num_nodes = x.shape[0] if num_nodes is None else int(num_nodes)
    if len(x.shape) != 2 or x.shape[0] != num_nodes:
        raise ValueError(f"x must have shape [num_nodes={num_nodes}, F], got {tuple(x.shape)}")
    if neighbourhoods is not None:
        if edge_index is not None or edge_type is not None:
            raise ValueError("give the graph as edge_index and edge_type or as "
                             "neighbourhoods, not both")
        if neighbourhoods.num_nodes != num_nodes:
            raise ValueError(f"neighbourhoods cover {neighbourhoods.num_nodes} nodes, "
                             f"x has {num_nodes}")
    else:
        _check_edges(edge_index, edge_type, num_nodes)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if out is not None:
        if out.dim() != 2 or out.size(0) != num_nodes:
            raise ValueError(f"out must have shape [num_nodes={num_nodes}, D], "
                             f"got {tuple(out.shape)}")
        if num_nodes and torch.is_tensor(x) and \
                out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            raise ValueError("out must not share memory with x (layers read x while writing)")
    if device is None:
        param = next(iter(encoder.parameters()), None)
        device = x.device if param is None else param.device
    device = torch.device(device)
    if num_nodes == 0:
        return out if out is not None else torch.empty(0, x.shape[1], device=x.device)

    if neighbourhoods is None:
        neighbourhoods = InNeighbourhoods.from_edges(edge_index, edge_type, num_nodes)
    bounds = neighbourhoods.bounds(int(batch_size), LAYER_EDGES)
    num_layers = int(encoder.num_layers)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=num_layers * len(bounds), desc='layer-wise inference', unit='batch')
    rows: Union[Tensor, LayerRows] = x
    with evaluating(encoder):
        try:
            states = [_to(s, device) for s in encoder.layer_states()]
            for i, state in enumerate(states):
                last = i == num_layers - 1

                def outputs(i=i, state=state, rows=rows):
                    for start, stop in bounds:
                        batch = neighbourhoods.batch(start, stop)
                        b = batch.batch_size
                        h = encoder.layer_forward(i, rows[batch.n_id.to(rows.device)].to(device),
                                                  batch.edge_index.to(device),
                                                  batch.edge_type.to(device), state, num_targets=b)
                        if bar is not None:
                            bar.update(1)
                        yield batch.n_id[:b], h

                if scratch is not None and not (last and out is not None):
                    previous = rows
                    rows = LayerRows.write(osp.join(scratch, f'layer{i}'), num_nodes, outputs())
                    if isinstance(previous, LayerRows):  # the layer before is read no more
                        previous.close()
                else:
                    nxt = out if last else None
                    for targets, h in outputs():
                        if nxt is None:
                            nxt = torch.empty(num_nodes, h.size(1), dtype=h.dtype,
                                              device=x.device)
                        nxt[targets.to(nxt.device)] = h.to(nxt.device, nxt.dtype)
                    if isinstance(rows, LayerRows):
                        rows.close()
                    rows = nxt
        except BaseException:
            if isinstance(rows, LayerRows):
                rows.close()
            raise
        finally:
            if bar is not None:
                bar.close()
    return rows


class LayerRows:
    r"""A layer's ``[N, D]`` output on disk (a
    :class:`~native_pyg.data.feature_store.DiskFeatureStore` written a batch
    at a time, float32), read by row id: ``rows[index]`` is ``[len(index),
    D]`` (``rows[None]``: all of them). Its directory is removed by
    :meth:`close`, or when the object is collected."""

    device = torch.device('cpu')

    def __init__(self, root: str):
        from native_pyg.data.feature_store import DiskFeatureStore
        self.root = root
        self.store = DiskFeatureStore(root)
        self.shape = torch.Size([self.store.num_entities, self.store.dims['h']])
        # what close() removes: the layer's directory (or, see adopt, one holding it)
        self._finalizer = weakref.finalize(self, shutil.rmtree, root, True)

    @classmethod
    def write(cls, root: str, num_nodes: int,
              outputs: Iterator[Tuple[Tensor, Tensor]]) -> 'LayerRows':
        """Writes ``(targets, rows)`` batches, which must come in row order."""
        from native_pyg.data.feature_store import FeatureStoreWriter
        writer = FeatureStoreWriter(root, num_nodes, 'float32')
        expected = [0]

        def chunks():
            for targets, h in outputs:
                start = expected[0]
                if not torch.equal(targets.cpu(), torch.arange(start, start + targets.numel())):
                    raise RuntimeError("layer-wise batches must come in row order to be "
                                       "written to disk")
                expected[0] += targets.numel()
                yield h.detach().float().cpu()

        try:
            writer.write('h', chunks(), masks=None)
            writer.close()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root)

    def size(self, dim: Optional[int] = None):
        return self.shape if dim is None else self.shape[dim]

    def __getitem__(self, index: Optional[Tensor]) -> Tensor:
        if index is None:
            index = torch.arange(self.shape[0])
        return self.store.get_tensor('h', 'x', index=torch.as_tensor(index).cpu())

    def close(self) -> None:
        """Removes the rows from disk."""
        self._finalizer()

    def adopt(self, directory: str) -> 'LayerRows':
        """Removes ``directory`` (one holding the rows) instead of the rows'
        own directory when closed; returns ``self``."""
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, shutil.rmtree, directory, True)
        return self

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.root!r}, shape={tuple(self.shape)})'


#: in-edges of a batch of layer-wise inference, on average: its messages are a
#: few ``[edges, D]`` tensors, whatever the number of targets
LAYER_EDGES = 2 ** 18

#: with ``scratch='auto'``, layer outputs larger than this go to disk
LAYER_SCRATCH_BYTES = 2 ** 30


def layerwise_structural_embeddings(model, batch_size: int = 65536, progress: bool = False,
                                    device: Optional[Union[str, torch.device]] = None,
                                    out: Optional[Tensor] = None,
                                    scratch: Optional[str] = 'auto') -> Union[Tensor, LayerRows]:
    r"""``[N, De]``: what ``model.structural_embeddings(None)`` of a
    :class:`~native_pyg.nn.NativE` with a structural encoder computes
    outside a :meth:`~native_pyg.nn.NativE.subgraph` context (the encoder
    over the whole training graph from
    :meth:`~native_pyg.nn.NativE.encoder_input`: the entity table plus,
    under ``encoder_input='structure+modalities'``, the mean projected
    modality embedding), by :func:`layerwise_inference`. The input is built
    in chunks of ``batch_size`` entities; the encoder runs in eval mode.
    Arguments as :func:`layerwise_inference`; ``scratch='auto'`` puts the
    layers on disk when one layer's output passes
    :data:`LAYER_SCRATCH_BYTES` (in a temporary directory, removed when the
    returned :class:`LayerRows` is closed or collected), else keeps them in
    memory. On disk the input is written there too, never held as a
    second ``[N, De]`` copy of the table.
    """
    encoder = model.structural_encoder
    if encoder is None:
        raise ValueError("layer-wise structural embeddings need a model with a structural "
                         "encoder (NativE(encoder=...)); without one they are "
                         "model.structural_embeddings()")
    table = model.entity_emb(None).detach()  # all rows, no copy
    num_nodes = table.size(0)
    owns = None
    if scratch == 'auto':
        scratch = None
        if table.size(0) * table.size(1) * 4 > LAYER_SCRATCH_BYTES:
            import tempfile
            scratch = owns = tempfile.mkdtemp(prefix='native_pyg-layers-')
    step = max(int(batch_size), 1)
    x: Union[Tensor, LayerRows] = table
    if model.encoder_reads_features:
        def chunks():
            for start in range(0, num_nodes, step):
                index = torch.arange(start, min(start + step, num_nodes), device=table.device)
                yield index, model.encoder_input(index)

        with torch.no_grad():
            if scratch is None:
                x = table.clone()
                for index, rows in chunks():
                    x[index] = rows
            else:
                x = LayerRows.write(osp.join(scratch, 'input'), num_nodes, chunks())
    result = None
    try:
        # the triples' CSC: no [2, 2E] edge arrays beside it (1.8 GB less at 16 M triples)
        graph = model.inputs.training_graph()
        result = layerwise_inference(encoder, x, None, None, num_nodes=num_nodes,
                                     batch_size=batch_size, progress=progress, device=device,
                                     out=out, scratch=scratch,
                                     neighbourhoods=InNeighbourhoods.of_training_graph(graph))
    finally:
        if isinstance(x, LayerRows):
            x.close()
        if owns is not None:  # the temporary directory goes with the rows, else now
            if isinstance(result, LayerRows):
                result.adopt(owns)
            else:
                shutil.rmtree(owns, ignore_errors=True)
    return result


@contextmanager
def entities_encoded_once(model, batch_size: int = 65536, progress: bool = False):
    r"""``model.cached_entities(...)`` for scoring all entities in chunks:
    a structural encoder with the per-layer API runs once, by
    :func:`layerwise_structural_embeddings` (its output on disk past
    :data:`LAYER_SCRATCH_BYTES`, removed on exit); a model without
    ``cached_entities``, or inside such a context already, is used as it is."""
    if not hasattr(model, 'cached_entities') or getattr(model, 'entities_cached', False):
        yield model  # nothing to cache, or encoded already by an enclosing context
        return
    encoder = getattr(model, 'structural_encoder', None)
    structure = (None if missing_layerwise_api(encoder) else
                 layerwise_structural_embeddings(model, batch_size, progress))
    try:
        with model.cached_entities(structure=structure):
            yield model
    finally:
        if isinstance(structure, LayerRows):
            structure.close()


def _to(state: Any, device: torch.device) -> Any:
    return state.to(device) if isinstance(state, Tensor) else state
