"""Conversion between an MMKG :class:`HeteroData` and a
:class:`networkx.MultiDiGraph` (one node per entity, one edge per triple).

Graph conventions (shared by both directions):

- node keys are the entities; ``str(node)`` is the entity name;
- every edge carries its relation label under ``relation_key`` and its split
  (``'train'``, ``'valid'`` or ``'test'``; absent = ``'train'``) under
  ``split_key``; parallel edges hold duplicate rows;
- a modality is a node attribute holding a 1-D tensor; an absent or
  :obj:`None` attribute means the entity lacks that modality;
- ``G.graph['relation_names']`` (optional) fixes the relation ids, and
  ``G.graph['name']`` (optional) names the dataset.

Reading the graph walks its nodes and edges in Python (networkx stores them
as Python objects); the tensors are built once at the end.
"""
from __future__ import annotations

from typing import Dict, Hashable, List, Optional, Sequence

import networkx as nx
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from native_pyg.data.schema import (
    ENTITY,
    SPLITS,
    build_mmkg,
    modalities as data_modalities,
    split_triples,
)


def _modality_names(G: nx.MultiDiGraph) -> List[str]:
    """Every node attribute that holds a tensor on at least one node, in
    order of first appearance."""
    names: Dict[str, None] = {}
    for _, attrs in G.nodes(data=True):
        for key, value in attrs.items():
            if isinstance(value, Tensor):
                names.setdefault(key, None)
    return list(names)


def _modality_tensors(G: nx.MultiDiGraph, modality: str) -> tuple:
    """``(x [N, d], mask [N])`` of one modality read from node attributes."""
    rows, vectors, dim = [], [], None
    for i, (node, attrs) in enumerate(G.nodes(data=True)):
        value = attrs.get(modality)
        if value is None:
            continue
        try:
            vector = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"node {node!r}: modality {modality!r} is not a tensor "
                            f"({type(value).__name__})") from e
        if vector.dim() != 1:
            raise ValueError(f"node {node!r}: modality {modality!r} must be a 1-D tensor, "
                             f"got shape {tuple(vector.shape)}")
        if dim is None:
            dim = vector.numel()
        elif vector.numel() != dim:
            raise ValueError(f"node {node!r}: modality {modality!r} has length "
                             f"{vector.numel()}, other nodes have length {dim}")
        rows.append(i)
        vectors.append(vector)
    if not vectors:
        raise ValueError(f"no node holds modality {modality!r}")
    x_present = torch.stack(vectors)
    if not x_present.is_floating_point():
        x_present = x_present.to(torch.get_default_dtype())
    index = torch.tensor(rows, dtype=torch.long)
    x = x_present.new_zeros(G.number_of_nodes(), dim).index_copy_(0, index, x_present)
    mask = torch.zeros(G.number_of_nodes(), dtype=torch.bool)
    mask[index] = True
    return x, mask


def from_networkx(
    G: nx.MultiDiGraph,
    relation_key: str = 'relation',
    split_key: str = 'split',
    modalities: Optional[Sequence[str]] = None,
) -> HeteroData:
    r"""Converts a :class:`networkx.MultiDiGraph` into an MMKG
    :class:`HeteroData` (see :mod:`native_pyg.data.schema`).

    Entity :math:`i` is the :math:`i`-th node of ``G.nodes`` and is named
    ``str(node)``. Relation ids follow ``G.graph['relation_names']`` when
    given (as written by :func:`to_networkx`); labels not listed there, or all
    labels without it, get the next ids in order of first appearance over
    ``G.edges``. Triples of a split follow the edge order of networkx (grouped
    by head), not any original row order.

    Args:
        G (networkx.MultiDiGraph): The knowledge graph.
        relation_key (str): Edge attribute holding the relation label.
            (default: :obj:`'relation'`)
        split_key (str): Edge attribute holding the split; edges without it
            are training triples. (default: :obj:`'split'`)
        modalities (list[str], optional): Node attributes to read as feature
            modalities; every node attribute holding a tensor when
            :obj:`None`. (default: :obj:`None`)
    """
    if not isinstance(G, nx.MultiDiGraph):
        raise TypeError(f"expected a networkx.MultiDiGraph, got {type(G).__name__}")
    if isinstance(modalities, str):
        modalities = [modalities]
    node_index = {node: i for i, node in enumerate(G.nodes)}

    relation_ids: Dict[Hashable, int] = {
        name: i for i, name in enumerate(G.graph.get('relation_names') or [])}
    rows: Dict[str, List[tuple]] = {s: [] for s in SPLITS}
    for u, v, key, attrs in G.edges(keys=True, data=True):
        if attrs.get(relation_key) is None:
            raise ValueError(f"edge ({u!r}, {v!r}, key={key!r}) has no "
                             f"{relation_key!r} attribute")
        split = attrs.get(split_key)
        split = 'train' if split is None else split
        if split not in rows:
            raise ValueError(f"edge ({u!r}, {v!r}, key={key!r}) has unknown split "
                             f"{split!r}; expected one of {SPLITS}")
        rel = relation_ids.setdefault(attrs[relation_key], len(relation_ids))
        rows[split].append((node_index[u], rel, node_index[v]))
    triples = {s: torch.tensor(r, dtype=torch.long).view(-1, 3) for s, r in rows.items()}

    names = _modality_names(G) if modalities is None else list(modalities)
    if ENTITY in names:
        raise ValueError(f"{ENTITY!r} is reserved and cannot name a modality")
    features, masks = {}, {}
    for m in names:
        features[m], masks[m] = _modality_tensors(G, m)

    data = build_mmkg(
        num_entities=G.number_of_nodes(),
        num_relations=len(relation_ids),
        train=triples['train'], valid=triples['valid'], test=triples['test'],
        entity_names=[str(node) for node in G.nodes],
        relation_names=[str(label) for label in relation_ids],
        features=features, masks=masks,
    )
    if G.graph.get('name') is not None:
        data.name = G.graph['name']
    return data


def _unique_names(names: Sequence[str], what: str) -> None:
    if len(set(names)) != len(names):
        seen, dup = set(), None
        for n in names:
            if n in seen:
                dup = n
                break
            seen.add(n)
        raise ValueError(f"{what} names must be unique to serve as networkx keys; "
                         f"{dup!r} occurs more than once")


def to_networkx(
    data: HeteroData,
    relation_key: str = 'relation',
    split_key: str = 'split',
) -> nx.MultiDiGraph:
    r"""Converts an MMKG :class:`HeteroData` into a
    :class:`networkx.MultiDiGraph`, the inverse of :func:`from_networkx`:
    entity names become the nodes (in id order), every triple of every split
    an edge carrying its relation name and split, every present modality row
    a 1-D tensor node attribute (a copy: editing it leaves ``data`` as is).
    ``G.graph`` holds ``relation_names`` (so relation ids survive a round
    trip, unused relations included) and the dataset ``name`` if set.

    Args:
        data (HeteroData): An MMKG graph.
        relation_key (str): Edge attribute for the relation name.
            (default: :obj:`'relation'`)
        split_key (str): Edge attribute for the split.
            (default: :obj:`'split'`)
    """
    names = list(data[ENTITY].name)
    relation_names = list(data.relation_names)
    _unique_names(names, 'entity')
    _unique_names(relation_names, 'relation')

    G = nx.MultiDiGraph()
    G.graph['relation_names'] = relation_names
    if getattr(data, 'name', None) is not None:
        G.graph['name'] = data.name
    G.add_nodes_from(names)
    for m in data_modalities(data):
        mask = data[m].mask
        rows = mask.nonzero().view(-1).tolist()
        vectors = data[m].x[mask].unbind(0)  # boolean indexing copies
        nx.set_node_attributes(G, {names[i]: vec for i, vec in zip(rows, vectors)}, m)
    for split in SPLITS:
        h, r, t = split_triples(data, split).t().tolist()
        G.add_edges_from(
            (names[a], names[b], {relation_key: relation_names[c], split_key: split})
            for a, c, b in zip(h, r, t))
    return G
