"""Training steps for GNN encoders: full-graph and neighbour-sampled batches."""
import pytest
import torch

from native_pyg.data import split_triples
from native_pyg.loader.neighbor_loader import (KGBatch, KGNeighborLoader, NeighborSamplingUnavailable,
                                    TrainingGraph, neighbor_sampling_backend)
from native_pyg.data.relations import triple_keys
from native_pyg.pipeline import build_model
from native_pyg.training import Trainer
from native_pyg.training.batching import TripleBatches
from tests.conftest import gnn_run_config, gnn_steps


def _args(data):
    s = gnn_steps(data)
    return s.triples, s.batch_size, s.sampler, s.generator


def test_full_graph_steps_hold_every_training_edge_but_the_batch_positives(gnn_small):
    graph = TrainingGraph.from_data(gnn_small)
    batch = next(iter(TripleBatches(*_args(gnn_small), graph=graph)))
    e = split_triples(gnn_small, 'train').size(0)
    pos = {tuple(x) for x in batch.pos.tolist()}
    kept = {tuple(x) for x in torch.stack([batch.edge_index[0], batch.edge_type,
                                           batch.edge_index[1]], 1).tolist()}
    expected = set()
    for h, r, t in split_triples(gnn_small, 'train').tolist():
        if (h, r, t) not in pos:
            expected |= {(h, r, t), (t, r + gnn_small.num_relations, h)}
    assert kept == expected and batch.edge_index.size(1) < 2 * e
    assert batch.n_id.tolist() == list(range(gnn_small['entity'].num_nodes))


@pytest.mark.parametrize('num_neighbors', [[3], [5, 2], [-1]])
def test_sampled_batches_carry_global_ids_relations_and_modality_rows(gnn_small, num_neighbors):
    loader = KGNeighborLoader(gnn_small, num_neighbors, gnn_steps(gnn_small))
    assert len(loader) == len(gnn_steps(gnn_small))
    train = split_triples(gnn_small, 'train')
    train_keys = set(triple_keys(train, gnn_small['entity'].num_nodes, gnn_small.num_relations).tolist())
    num_rel = gnn_small.num_relations
    for i, batch in enumerate(loader):
        n_id = batch.n_id
        # every scored entity (heads, tails, negatives) is a node, seeds first
        seeds = torch.unique(torch.cat([batch.pos[:, 0], batch.pos[:, 2], batch.neg.flatten()]))
        assert n_id[:seeds.numel()].tolist() == seeds.tolist()
        assert set(n_id.tolist()) >= set(seeds.tolist())
        # message edges are training triples in global ids, both directions
        src, dst = n_id[batch.edge_index[0]], n_id[batch.edge_index[1]]
        fwd = batch.edge_type < num_rel
        h = torch.where(fwd, src, dst)
        t = torch.where(fwd, dst, src)
        r = batch.edge_type % num_rel
        keys = triple_keys(torch.stack([h, r, t], 1), gnn_small['entity'].num_nodes, num_rel)
        assert set(keys.tolist()) <= train_keys
        assert torch.equal(train[batch.e_id], torch.stack([h, r, t], 1))
        # no positive of the batch is a message edge, in either direction
        pos_keys = triple_keys(batch.pos, gnn_small['entity'].num_nodes, num_rel)
        assert not torch.isin(keys, pos_keys).any()
        # feature rows fetched by global id
        for m in ('image', 'text', 'numeric'):
            assert torch.equal(batch.x_dict[m], gnn_small[m].x[n_id])
            assert torch.equal(batch.mask_dict[m], gnn_small[m].mask[n_id])
        if i == 2:
            break


def test_without_a_sampling_backend_only_sampling_fails(gnn_small, monkeypatch):
    import torch_geometric.typing as pyg_typing
    monkeypatch.setattr(pyg_typing, 'WITH_PYG_LIB', False)
    monkeypatch.setattr(pyg_typing, 'WITH_TORCH_SPARSE', False)
    assert neighbor_sampling_backend() is None
    run = gnn_run_config('rgcn', num_neighbors=[5])
    with pytest.raises(NeighborSamplingUnavailable, match='pip install --no-build-isolation '
                                                          'torch_sparse'):
        Trainer(build_model(gnn_small, run), gnn_small, run)
    run = gnn_run_config('rgcn', num_neighbors=None, epochs=1)  # full graph still trains
    Trainer(build_model(gnn_small, run), gnn_small, run).fit()


def test_num_neighbors_without_an_encoder_is_an_error(gnn_small):
    run = gnn_run_config('none', num_neighbors=[5])
    with pytest.raises(ValueError, match='needs|GNN encoder'):
        Trainer(build_model(gnn_small, run), gnn_small, run)


def test_batches_move_with_pinned_memory_api(gnn_small):
    batch = next(iter(KGNeighborLoader(gnn_small, [2], gnn_steps(gnn_small))))
    moved = batch.to('cpu', non_blocking=True)
    assert isinstance(moved, KGBatch) and torch.equal(moved.n_id, batch.n_id)
    assert set(moved.x_dict) == set(batch.x_dict)


def test_worker_processes_get_the_same_steps(gnn_small):
    """Negatives are drawn in the main process: with a worker (persistent
    across epochs) the steps' positives and negatives are those of
    num_workers=0; only the neighbourhoods are sampled in the worker."""
    plain = KGNeighborLoader(gnn_small, [3, 2], gnn_steps(gnn_small, batch_size=256))
    worker = KGNeighborLoader(gnn_small, [3, 2], gnn_steps(gnn_small, batch_size=256), num_workers=1,
                              persistent_workers=True)
    for _ in range(2):  # two epochs through the same persistent worker
        for a, b in zip(plain, worker):
            assert torch.equal(a.pos, b.pos) and torch.equal(a.neg, b.neg)
            assert torch.equal(a.corrupt_head, b.corrupt_head)
            assert set(b.n_id.tolist()) >= set(b.pos[:, 0].tolist())


def test_edge_ids_are_answered_from_the_triples_without_2e_edge_arrays(gnn_small):
    """What an edge id stands for (type, triple, whether a positive) equals the
    explicit graph with inverse edges, and the sampler keeps one sorted copy
    of the sources plus the edge-id map: no further [2E] arrays."""
    if neighbor_sampling_backend() is None:
        pytest.skip('neighbour sampling needs torch_sparse or pyg-lib (make install-accel)')
    graph = TrainingGraph.from_data(gnn_small)
    edge_index, edge_type = graph.edges()
    e = graph.num_triples
    e_id = torch.randperm(2 * e)[:500]
    assert torch.equal(graph.edge_type_of(e_id), edge_type[e_id])
    pos = split_triples(gnn_small, 'train')[e_id[:20] % e]
    keys = triple_keys(torch.stack([edge_index[0], edge_type % graph.num_relations,
                                    edge_index[1]], 1), graph.num_entities, graph.num_relations)
    fwd = edge_type < graph.num_relations  # an inverse edge carries its triple's key
    keys = torch.where(fwd, keys, triple_keys(torch.stack(
        [edge_index[1], edge_type % graph.num_relations, edge_index[0]], 1),
        graph.num_entities, graph.num_relations))
    expected = ~torch.isin(keys, triple_keys(pos, graph.num_entities, graph.num_relations))
    assert torch.equal(graph.message_mask(None, pos), expected)
    assert torch.equal(graph.message_mask(e_id, pos), expected[e_id])
    # the data's triples are kept as given
    assert graph.triple_edge_index.data_ptr() == gnn_small['entity', 'relation', 'entity'].edge_index.data_ptr()
    loader = KGNeighborLoader(gnn_small, [3, 2], gnn_steps(gnn_small))
    sampler = loader.node_sampler
    held = sum(t.numel() * t.element_size() for t in (sampler.colptr, sampler.row, loader.edge_perm))
    assert held <= (graph.num_entities + 1) * 8 + 2 * e * (8 + 4)
    assert sampler.perm is None  # PyG was handed sorted edges: no permutation of its own
