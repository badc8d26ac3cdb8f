r"""Mini-batches of triples for training, with or without the sampled
neighbourhood of every entity a step scores.

:class:`KGBatch` is one training step: positives, their negatives and,
for a structural GNN encoder, the subgraph to run it on. The subgraph comes
from :class:`TrainingGraph` (the whole training graph) or from
:class:`KGNeighborLoader` (PyG's :class:`~torch_geometric.sampler.NeighborSampler`
around the step's heads, tails and negatives). In both, **a batch's positive
triples are removed from its message-passing edges** (both directions), so
the encoder never sees the edge it is asked to predict: every message edge
carries the key of its triple, and edges whose key is one of the batch's
positives are dropped after sampling.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from native_pyg.loader.neighbourhood import destination_order
from native_pyg.data.feature_store import DiskFeatureStore
from native_pyg.data.relations import add_inverse_edges, isin_sorted, triple_keys
from native_pyg.data.schema import ENTITY, modalities as data_modalities, split_edges

INSTALL_HINT = ("pip install --no-build-isolation torch_sparse (or 'make install-accel'; "
                "pyg-lib works too where it installs)")


def neighbor_sampling_backend() -> Optional[str]:
    """``'pyg-lib'`` or ``'torch-sparse'``: the library PyG samples
    neighbourhoods with here, or ``None`` if neither is installed."""
    import torch_geometric.typing as pyg_typing
    if pyg_typing.WITH_PYG_LIB:
        return 'pyg-lib'
    if pyg_typing.WITH_TORCH_SPARSE:
        return 'torch-sparse'
    return None


class NeighborSamplingUnavailable(ImportError):
    """Neighbour sampling was asked for without a sampling backend."""


def require_neighbor_sampling() -> str:
    """The sampling backend, or a one-line :class:`NeighborSamplingUnavailable`
    naming the install command."""
    backend = neighbor_sampling_backend()
    if backend is None:
        raise NeighborSamplingUnavailable(
            f"neighbour-sampled training needs torch_sparse or pyg-lib, and neither is "
            f"installed: {INSTALL_HINT}; full-graph training (training.num_neighbors: null) "
            f"works without it")
    return backend


@dataclass
class KGBatch:
    r"""One training step.

    Attributes:
        pos: ``[B, 3]`` positive ``(head, relation, tail)`` rows (global ids).
        neg: ``[B, K]`` negative entities; ``corrupt_head`` ``[B]`` (or
            ``[B, K]``, one side per negative) says whether they replace
            the head (else the tail).
        n_id: ``[n]`` global entity ids of the subgraph's nodes (``None``:
            no subgraph, the model's own structure is used).
        edge_index: ``[2, E]`` message edges between rows of ``n_id``
            (inverse edges included, the batch's positives excluded).
        edge_type: ``[E]`` their types in :math:`[0, 2R)`.
        e_id: ``[E]`` the training-triple row of each message edge.
        x_dict, mask_dict: per feature modality, the rows ``[n, d_m]`` and
            masks ``[n]`` of ``n_id``, or of its first (seed) nodes only
            (fetched from the feature store; a disk store's rows in their
            stored dtype, float16 by default).
        num_sampled_nodes, num_sampled_edges: nodes per hop (seeds first)
            and message edges per hop of a sampled subgraph whose nodes and
            edges are ordered by hop (``None``: not known), so that an
            encoder can trim each layer to the nodes it still needs.
    """
    pos: Tensor
    neg: Tensor
    corrupt_head: Tensor
    n_id: Optional[Tensor] = None
    edge_index: Optional[Tensor] = None
    edge_type: Optional[Tensor] = None
    e_id: Optional[Tensor] = None
    x_dict: Dict[str, Tensor] = field(default_factory=dict)
    mask_dict: Dict[str, Tensor] = field(default_factory=dict)
    num_sampled_nodes: Optional[List[int]] = None
    num_sampled_edges: Optional[List[int]] = None

    def _apply(self, fn) -> 'KGBatch':
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = ({k: fn(x) for k, x in v.items()} if isinstance(v, dict)
                           else fn(v) if isinstance(v, Tensor) else v)
        return KGBatch(**out)

    def to(self, device, non_blocking: bool = False) -> 'KGBatch':
        """The batch on ``device`` (asynchronous copies from pinned memory
        with ``non_blocking=True``)."""
        return self._apply(lambda x: x.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> 'KGBatch':
        """Called by :class:`~torch.utils.data.DataLoader` under ``pin_memory=True``."""
        return self._apply(lambda x: x.pin_memory())

    @property
    def has_subgraph(self) -> bool:
        return self.n_id is not None

    def subgraph_kwargs(self) -> Dict:
        """The arguments of :meth:`native_pyg.nn.NativE.subgraph`."""
        return dict(n_id=self.n_id, edge_index=self.edge_index, edge_type=self.edge_type,
                    x_dict=self.x_dict, mask_dict=self.mask_dict,
                    num_sampled_nodes=self.num_sampled_nodes,
                    num_sampled_edges=self.num_sampled_edges)


def hop_sizes(num_seeds: int, row: Tensor, col: Tensor, num_nodes: int, num_hops: int
              ) -> Optional[Tuple[List[int], List[int]]]:
    r"""``(nodes per hop, edges per hop)`` of a sampled subgraph with edges
    ``row -> col`` whose nodes and edges come ordered by hop, as PyG's
    :class:`~torch_geometric.sampler.NeighborSampler` returns them with
    either backend: the ``num_seeds`` seeds first, then the nodes first
    reached at hop 1, 2, ...; the edges of hop :math:`k` end in the nodes
    first reached at hop :math:`k - 1` and come before those of hop
    :math:`k + 1`. ``None`` if the subgraph is not so ordered."""
    nodes, edges = [int(num_seeds)], []
    end, start = int(num_seeds), 0
    for _ in range(num_hops):
        rest = col[start:] < end
        stop = start + int(rest.sum())
        if not bool(rest[:stop - start].all()):
            return None  # an edge of a later hop before one of this hop
        reached = max(end, int(row[start:stop].max()) + 1) if stop > start else end
        nodes.append(reached - end)
        edges.append(stop - start)
        end, start = reached, stop
    if start != col.numel() or end != num_nodes:
        return None
    return nodes, edges


class TrainingGraph:
    r"""The training triples as a message-passing graph with inverse edges:
    triple :math:`i = (h, r, t)` is edge :math:`i` (:math:`h \to t`, type
    :math:`r`) and edge :math:`E + i` (:math:`t \to h`, type :math:`r + R`).

    Only the :math:`E` triples are kept (as given, without a copy); what an
    edge id stands for is computed from them, and the :math:`2E` edge arrays
    are built only for whole-graph steps (:meth:`full_batch`), where the
    graph is small enough to be encoded at every step.

    Args:
        edge_index (torch.Tensor): ``[2, E]`` training (head, tail) pairs.
        edge_type (torch.Tensor): ``[E]`` their relations.
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R`.
    """
    def __init__(self, edge_index: Tensor, edge_type: Tensor, num_entities: int,
                 num_relations: int):
        self.num_entities, self.num_relations = int(num_entities), int(num_relations)
        self.num_triples = int(edge_type.numel())
        self.triple_edge_index, self.relation = edge_index.long(), edge_type.long()
        self._edges: Optional[Tuple[Tensor, Tensor]] = None  # built by the first full_batch

    @classmethod
    def from_data(cls, data) -> 'TrainingGraph':
        edge_index, edge_type = split_edges(data, 'train')
        return cls(edge_index, edge_type, data[ENTITY].num_nodes, data.num_relations)

    def edges(self) -> Tuple[Tensor, Tensor]:
        """``(edge_index [2, 2E], edge_type [2E])``: every edge, inverses last."""
        return add_inverse_edges(self.triple_edge_index, self.relation, self.num_relations)

    def edge_type_of(self, e_id: Tensor) -> Tensor:
        """The type of each edge id: the triple's relation, plus :math:`R` for an inverse."""
        return self.relation[self.triple_index(e_id)] + \
            self.num_relations * (e_id >= self.num_triples).long()

    def _keys(self, rows: Optional[Tensor]) -> Tensor:
        """:func:`triple_keys` of the training triples ``rows`` (``None``: all)."""
        (h, t), r = self.triple_edge_index, self.relation
        if rows is not None:
            h, r, t = h[rows], r[rows], t[rows]
        return (h * self.num_relations + r) * self.num_entities + t

    def message_mask(self, e_id: Optional[Tensor], pos: Tensor) -> Tensor:
        """``[len(e_id)]`` bool: which edges ``e_id`` (``None`` = all) are not
        one of the triples ``pos`` ``[B, 3]`` (in either direction)."""
        keys = torch.unique(triple_keys(pos, self.num_entities, self.num_relations))
        if e_id is None:  # an edge and its inverse share their triple's answer
            return (~isin_sorted(self._keys(None), keys)).repeat(2)
        return ~isin_sorted(self._keys(self.triple_index(e_id)), keys)

    def triple_index(self, e_id: Tensor) -> Tensor:
        """The training-triple row of each edge id (an edge and its inverse share it)."""
        return e_id % max(self.num_triples, 1)

    def full_batch(self, pos: Tensor, neg: Tensor, corrupt_head: Tensor) -> KGBatch:
        """A step over the whole training graph minus its positives."""
        if self._edges is None:
            self._edges = self.edges()
        edge_index, edge_type = self._edges
        keep = self.message_mask(None, pos).nonzero().view(-1)
        return KGBatch(pos, neg, corrupt_head, n_id=torch.arange(self.num_entities),
                       edge_index=edge_index[:, keep], edge_type=edge_type[keep],
                       e_id=self.triple_index(keep))

    def sampling_csc(self) -> Tuple[Tensor, Tensor, Tensor]:
        r"""``(colptr [N + 1], row [2E], perm [2E])``: the edges sorted by
        destination as PyG's :func:`~torch_geometric.utils.index_sort` sorts
        them for its samplers (the same neighbour order, so the same samples),
        with ``perm`` mapping a sorted position to its edge id (int32 where
        it fits). Built from the triples without keeping the :math:`2E` edge
        arrays (:func:`~native_pyg.loader.neighbourhood.destination_order`)."""
        h, t = self.triple_edge_index
        dst = torch.cat([t, h])
        colptr, perm = destination_order(dst, self.num_entities)
        del dst
        row = torch.cat([h, t])[perm]
        if perm.numel() < 2 ** 31:
            perm = perm.int()
        return colptr, row, perm


class _OnePerStep:
    """A batch sampler whose every "index" is one whole :class:`KGBatch`
    drawn in the main process (negatives stay deterministic and resumable
    with worker processes), re-iterated once per epoch."""

    def __init__(self, batches: Iterable[KGBatch]):
        self.batches = batches

    def __iter__(self) -> Iterator[List[KGBatch]]:
        return ([b] for b in self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _Identity(torch.utils.data.Dataset):
    def __getitem__(self, item):
        return item


class KGNeighborLoader(torch.utils.data.DataLoader):
    r"""Neighbour-sampled training steps over an MMKG
    :class:`~torch_geometric.data.HeteroData`.

    For every step of ``batches`` (``KGBatch`` objects with positives and
    negatives, e.g. from
    :class:`~native_pyg.training.batching.TripleBatches`), the seeds are all
    entities the step scores (heads, tails and negatives). PyG's
    :class:`~torch_geometric.sampler.NeighborSampler` samples up to
    ``num_neighbors[l]`` incoming edges per node and hop :math:`l` over the
    ``('entity', 'relation', 'entity')`` training edges with inverse edges
    (``edge_type`` carried along as an edge attribute); edges of the step's
    own positive triples are then removed, so a hop may keep fewer than
    ``num_neighbors[l]`` edges. Feature rows of the sampled nodes are
    fetched by global id through the graph's feature-store interface
    (``data.get_tensor(group_name=m, attr_name='x', index=n_id)``), so a
    disk-backed store can stand in for the in-memory one: give it as
    ``feature_store`` (e.g. a
    :class:`~native_pyg.data.feature_store.DiskFeatureStore`) and rows are
    fetched from it instead of ``data``. Each batch carries its nodes and
    edges per hop (:func:`hop_sizes`), with which a
    :class:`~native_pyg.nn.gnn.LayerwiseEncoder` trims every layer to the
    nodes the next one needs (the last layer computes the seeds only).

    Negatives are drawn in the main process; with ``num_workers > 0`` only
    neighbourhood sampling and feature fetching run in the workers.

    Args:
        data (HeteroData): The MMKG.
        num_neighbors (list[int]): Neighbours per hop (``-1`` = all).
        batches (Iterable[KGBatch]): One epoch of steps per iteration, with
            ``len()``.
        modalities (list[str], optional): Modalities to fetch (default: all
            of ``feature_store``, else of ``data``).
        feature_store (FeatureStore, optional): Where feature rows are
            fetched. (default: :obj:`None`, ``data``)
        fetch (str, optional): Fetch the rows of every sampled node
            (``'nodes'``, for an encoder whose input includes features) or of
            the seeds only (``'seeds'``, the first rows of ``n_id``: all a
            step scores; far fewer rows from disk). (default: ``'nodes'``)
        **kwargs: :class:`torch.utils.data.DataLoader` options
            (``num_workers``, ``pin_memory``, ``persistent_workers``...).
    """
    def __init__(self, data, num_neighbors: Sequence[int], batches: Iterable[KGBatch],
                 modalities: Optional[Sequence[str]] = None, feature_store=None,
                 fetch: str = 'nodes', **kwargs):
        require_neighbor_sampling()
        num_neighbors = list(num_neighbors)
        if not num_neighbors or not all(isinstance(k, int) and (k > 0 or k == -1)
                                        for k in num_neighbors):
            raise ValueError(f"num_neighbors must be a non-empty list of positive integers "
                             f"(or -1 for all), one per hop; got {num_neighbors}")
        self.data, self.num_neighbors = data, num_neighbors
        self.batches = batches  # the steps it samples neighbourhoods for, one pass each
        self.graph = TrainingGraph.from_data(data)
        if fetch not in ('nodes', 'seeds'):
            raise ValueError(f"fetch must be 'nodes' or 'seeds', got {fetch!r}")
        self.fetch = fetch
        self.features = data if feature_store is None else feature_store
        if modalities is None:
            modalities = data_modalities(data) if feature_store is None else \
                [attr.group_name for attr in feature_store.get_all_tensor_attrs()
                 if attr.attr_name == 'x']
        self.modalities = list(modalities)
        with warnings.catch_warnings():  # PyG's advice to install pyg-lib, unavailable here
            warnings.filterwarnings('ignore', message=".*without a 'pyg-lib' installation")
            self.node_sampler, self.edge_perm = _neighbor_sampler(self.graph, num_neighbors)
        for key in ('batch_size', 'shuffle', 'sampler', 'batch_sampler', 'collate_fn'):
            if key in kwargs:
                raise ValueError(f"KGNeighborLoader takes its steps from `batches`; "
                                 f"{key!r} cannot be set")
        super().__init__(_Identity(), batch_sampler=_OnePerStep(batches),
                         collate_fn=self.collate, **kwargs)

    def collate(self, steps: List[KGBatch]) -> KGBatch:
        """Samples the neighbourhood of one step's entities."""
        from torch_geometric.sampler import NodeSamplerInput
        (step,) = steps
        pos = step.pos
        seeds = torch.unique(torch.cat([pos[:, 0], pos[:, 2], step.neg.reshape(-1)]))
        out = self.node_sampler.sample_from_nodes(NodeSamplerInput(input_id=None, node=seeds))
        e_id = self.edge_perm[out.edge].long()  # sorted positions -> edge ids
        keep = self.graph.message_mask(e_id, pos)
        hops = hop_sizes(seeds.numel(), out.row, out.col, out.node.numel(),
                         len(self.num_neighbors))
        if hops is not None:  # edges per hop once the batch's positives are removed
            kept = [int(k.sum()) for k in keep.split(hops[1])]
        e_id = e_id[keep]
        n_id = out.node
        rows = n_id if self.fetch == 'nodes' else n_id[:seeds.numel()]  # seeds come first
        return KGBatch(
            pos, step.neg, step.corrupt_head, n_id=n_id,
            edge_index=torch.stack([out.row[keep], out.col[keep]]),
            edge_type=self.graph.edge_type_of(e_id),
            e_id=self.graph.triple_index(e_id),
            x_dict={m: self.feature_rows(m, rows) for m in self.modalities},
            mask_dict={m: self.features.get_tensor(group_name=m, attr_name='mask', index=rows)
                       for m in self.modalities},
            num_sampled_nodes=None if hops is None else hops[0],
            num_sampled_edges=None if hops is None else kept)

    def feature_rows(self, modality: str, rows: Tensor) -> Tensor:
        """The raw feature rows of ``rows``: a
        :class:`~native_pyg.data.feature_store.DiskFeatureStore`'s as stored
        (float16: half the bytes of a step's subgraph), any other store's
        through PyG's ``get_tensor``."""
        if isinstance(self.features, DiskFeatureStore):
            return self.features.stored_rows(modality, rows)
        return self.features.get_tensor(group_name=modality, attr_name='x', index=rows)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_neighbors={self.num_neighbors}, '
                f'steps={len(self.batch_sampler)})')


def _neighbor_sampler(graph: TrainingGraph, num_neighbors: List[int]):
    """PyG's :class:`~torch_geometric.sampler.NeighborSampler` over the
    graph's edges sorted by destination, and the edge id of each sorted
    position. With torch_sparse the sorted arrays are handed over as a
    ``SparseTensor`` (no copy: 2 x 2E int64 less than an ``edge_index``,
    1 GB at wikikg2's size); otherwise as a sorted ``edge_index``."""
    import torch_geometric.typing as pyg_typing
    from torch_geometric.data import Data
    from torch_geometric.sampler import NeighborSampler
    colptr, row, perm = graph.sampling_csc()
    n = graph.num_entities
    if pyg_typing.WITH_TORCH_SPARSE:
        adj_t = pyg_typing.SparseTensor(rowptr=colptr, col=row, sparse_sizes=(n, n),
                                        is_sorted=True, trust_data=True)
        data = Data(adj_t=adj_t, num_nodes=n)
    else:
        col = torch.repeat_interleave(torch.arange(n), colptr.diff())
        data = Data(edge_index=torch.stack([row, col]), num_nodes=n)
    return NeighborSampler(data, num_neighbors, is_sorted=True), perm
