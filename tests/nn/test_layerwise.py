"""Layer-wise mini-batch inference of the structural encoders equals their
full-graph pass."""
import os.path as osp
import numpy as np
import pytest
import torch

from native_pyg.nn import NativE
from native_pyg.nn.gnn import CompGCNEncoder, RGCNEncoder, add_inverse_edges
from native_pyg.loader.neighbor_loader import TrainingGraph
from native_pyg.loader.neighbourhood import InNeighbourhoods
from native_pyg.nn.layerwise import LayerRows, layerwise_inference, layerwise_structural_embeddings

N, R, C = 36, 3, 8
ENCODERS = {
    'rgcn': lambda layers: RGCNEncoder(C, R, num_layers=layers),
    'rgcn-bases': lambda layers: RGCNEncoder(C, R, num_layers=layers, num_bases=2),
    'rgcn-blocks': lambda layers: RGCNEncoder(C, R, num_layers=layers, num_blocks=2),
    'compgcn-sub': lambda layers: CompGCNEncoder(C, R, num_layers=layers, composition='sub'),
    'compgcn-mult': lambda layers: CompGCNEncoder(C, R, num_layers=layers, composition='mult'),
    'compgcn-corr': lambda layers: CompGCNEncoder(C, R, num_layers=layers, composition='corr'),
}


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """Tiny tensors: intra-op threads only add waiting (on a loaded machine, a lot)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _graph(seed=0):
    """Triples among nodes 0..27 with inverse edges, duplicates and a
    self-loop; nodes 30, 31 only send (no in-edges); 28, 29, 32..35 are
    isolated."""
    g = torch.Generator().manual_seed(seed)
    h, t = torch.randint(0, 28, (70,), generator=g), torch.randint(0, 28, (70,), generator=g)
    r = torch.randint(0, R, (70,), generator=g)
    h, r, t = torch.cat([h, h[:5], torch.tensor([3])]), torch.cat([r, r[:5], torch.tensor([1])]), \
        torch.cat([t, t[:5], torch.tensor([3])])
    edge_index, edge_type = add_inverse_edges(torch.stack([h, t]), r, R)
    send = torch.tensor([[30, 30, 31], [0, 5, 0]])  # one-way: 30, 31 have no in-edges
    return (torch.cat([edge_index, send], 1),
            torch.cat([edge_type, torch.tensor([0, 2 * R - 1, 1])]))


@pytest.mark.parametrize('batch_size', [4, 7, 100])  # divides N, does not, above N
@pytest.mark.parametrize('num_layers', [1, 2, 3])
@pytest.mark.parametrize('name', sorted(ENCODERS))
def test_layerwise_inference_equals_the_full_graph_pass(name, num_layers, batch_size):
    torch.manual_seed(0)
    encoder = ENCODERS[name](num_layers).eval()
    x, (edge_index, edge_type) = torch.randn(N, C), _graph()
    full = encoder(x, edge_index, edge_type)
    out = layerwise_inference(encoder, x, edge_index, edge_type, batch_size=batch_size)
    assert out.shape == (N, C)
    assert torch.allclose(out, full, atol=1e-5), (out - full).abs().max()
    # nodes without in-edges keep only their self-connection (not an all-zero row)
    assert out[[30, 31, 35]].abs().sum(1).gt(0).all()


@pytest.mark.parametrize('name', ['rgcn', 'compgcn-corr'])
def test_the_per_layer_api_is_the_forward_and_a_bipartite_layer_its_target_rows(name):
    torch.manual_seed(0)
    encoder = ENCODERS[name](2).eval()
    x, (edge_index, edge_type) = torch.randn(N, C), _graph()
    states = encoder.layer_states()
    assert len(states) == 2
    h = x
    for i, state in enumerate(states):
        h = encoder.layer_forward(i, h, edge_index, edge_type, state)
    assert torch.equal(h, encoder(x, edge_index, edge_type))
    # targets first; only their in-edges, re-indexed into the subgraph
    targets = torch.tensor([5, 0, 3])
    keep = torch.isin(edge_index[1], targets)
    n_id = torch.cat([targets, edge_index[0, keep][~torch.isin(edge_index[0, keep], targets)]
                      .unique()])
    local = torch.full((N,), -1).index_put_((n_id,), torch.arange(n_id.numel()))
    sub = encoder.layer_forward(0, x[n_id], local[edge_index[:, keep]], edge_type[keep],
                                states[0], num_targets=3)
    assert sub.shape == (3, C)
    full = encoder.layer_forward(0, x, edge_index, edge_type, states[0])
    assert torch.allclose(sub, full[targets], atol=1e-5)
    if name.startswith('compgcn'):  # the state defaults to the layer's own
        assert torch.equal(encoder.layer_forward(1, x, edge_index, edge_type),
                           encoder.layer_forward(1, x, edge_index, edge_type, states[1]))
    with pytest.raises(IndexError, match='layer 2 out of range'):
        encoder.layer_forward(2, x, edge_index, edge_type)


def test_batches_are_partial_1_hop_subgraphs_holding_every_in_edge_once():
    torch.manual_seed(0)
    encoder = RGCNEncoder(C, R, num_layers=2).eval()
    x, (edge_index, edge_type) = torch.randn(N, C), _graph()
    calls, forward = [], encoder.layer_forward

    def spy(i, x_sub, ei, et, state=None, num_targets=None):
        calls.append((i, x_sub.size(0), ei.size(1), num_targets))
        assert ei.size(1) == 0 or int(ei[1].max()) < num_targets  # edges end in targets
        return forward(i, x_sub, ei, et, state, num_targets=num_targets)

    encoder.layer_forward = spy
    layerwise_inference(encoder, x, edge_index, edge_type, batch_size=5)
    assert len(calls) == 2 * 8  # 2 layers x ceil(36 / 5) batches
    for layer in (0, 1):
        mine = [c for c in calls if c[0] == layer]
        assert sum(c[3] for c in mine) == N
        assert sum(c[2] for c in mine) == edge_index.size(1)  # every edge in exactly one batch
        assert all(c[1] < N and c[2] < edge_index.size(1) for c in mine)
    source = InNeighbourhoods.from_edges(edge_index, edge_type, N)
    batches = [source.batch(*b) for b in source.bounds(5, 1000)]
    assert [b.n_id[:b.batch_size].tolist() for b in batches][:2] == [[0, 1, 2, 3, 4],
                                                                      [5, 6, 7, 8, 9]]


def _in_edges(batch):
    """Each target's in-edges of a batch as sorted (target, source, type) global triples."""
    n_id, (src, dst) = batch.n_id, batch.edge_index
    return sorted(zip(n_id[dst].tolist(), n_id[src].tolist(), batch.edge_type.tolist()))


@pytest.mark.filterwarnings("ignore:Using 'NeighborSampler' without a 'pyg-lib'")
def test_in_neighbourhoods_are_what_pyg_neighbor_loader_gives_with_all_neighbours():
    from torch_geometric.data import Data
    from torch_geometric.loader import NeighborLoader
    from native_pyg.loader.neighbor_loader import neighbor_sampling_backend
    if neighbor_sampling_backend() is None:
        pytest.skip('neighbour sampling needs torch_sparse or pyg-lib (make install-accel)')
    edge_index, edge_type = _graph()
    ours = InNeighbourhoods.from_edges(edge_index, edge_type, N)
    pyg = NeighborLoader(Data(edge_index=edge_index, edge_type=edge_type, num_nodes=N),
                         num_neighbors=[-1], batch_size=6, shuffle=False,
                         subgraph_type='directional')
    for (start, stop), theirs in zip(ours.bounds(6, 10 ** 6), pyg):
        mine = ours.batch(start, stop)
        assert mine.n_id[:mine.batch_size].tolist() == \
            theirs.n_id[:theirs.batch_size].tolist() == list(range(start, stop))
        assert mine.edge_index.size(1) == 0 or int(mine.edge_index[1].max()) < mine.batch_size
        assert mine.n_id.unique().numel() == mine.n_id.numel()
        assert _in_edges(mine) == _in_edges(theirs)


def test_a_training_graphs_neighbourhoods_equal_those_of_its_edges_and_bound_the_edges():
    g = torch.Generator().manual_seed(1)
    h, t, r = (torch.randint(0, 20, (60,), generator=g), torch.randint(0, 20, (60,), generator=g),
               torch.randint(0, R, (60,), generator=g))
    graph = TrainingGraph(torch.stack([h, t]), r, 24, R)  # 20..23 isolated
    of_triples = InNeighbourhoods.of_training_graph(graph)
    of_edges = InNeighbourhoods.from_edges(*graph.edges(), 24)
    assert len(of_triples) == len(of_edges) == 120
    bounds = of_triples.bounds(7, 9)
    assert bounds == of_edges.bounds(7, 9) and bounds[0][0] == 0 and bounds[-1][1] == 24
    assert all(a < b for a, b in bounds) and all(b == c for (_, b), (c, _) in
                                                 zip(bounds, bounds[1:]))
    degree = torch.bincount(torch.cat([t, h]), minlength=24)
    for a, b in bounds:
        assert b - a <= 7 and (int(degree[a:b].sum()) <= 9 or b - a == 1)
        assert _in_edges(of_triples.batch(a, b)) == _in_edges(of_edges.batch(a, b))
    with pytest.raises(ValueError, match='max_targets and max_edges must be >= 1'):
        of_triples.bounds(0, 9)


def test_dropout_is_off_and_the_mode_restored_and_out_is_filled(tmp_path):
    torch.manual_seed(0)
    encoder = CompGCNEncoder(C, R, num_layers=2, dropout=0.5)
    x, (edge_index, edge_type) = torch.randn(N, C), _graph()
    full = encoder.eval()(x, edge_index, edge_type)
    encoder.train()
    out = torch.zeros(N, C)
    res = layerwise_inference(encoder, x, edge_index, edge_type, batch_size=8, out=out,
                              device='cpu')
    assert res is out and encoder.training
    assert torch.allclose(out, full, atol=1e-5)
    mm = np.lib.format.open_memmap(tmp_path / 'emb.npy', mode='w+', dtype=np.float32,
                                   shape=(N, C))
    layerwise_inference(encoder, x, edge_index, edge_type, batch_size=8,
                        out=torch.from_numpy(mm))
    mm.flush()
    del mm
    assert torch.allclose(torch.from_numpy(np.load(tmp_path / 'emb.npy')), full, atol=1e-5)


def test_progress_bar_counts_layers_times_batches(capsys):
    encoder = RGCNEncoder(C, R, num_layers=2).eval()
    layerwise_inference(encoder, torch.randn(N, C), *_graph(), batch_size=10, progress=True)
    assert '8/8' in capsys.readouterr().err  # 2 layers x 4 batches


@pytest.mark.parametrize('encoder,kwargs,encoder_input', [
    ('rgcn', {'num_layers': 2, 'num_bases': 2}, 'structure'),
    ('compgcn', {'num_layers': 2}, 'structure+modalities'),
])
def test_layerwise_structural_embeddings_equal_the_models(gnn_small, encoder, kwargs,
                                                          encoder_input):
    torch.manual_seed(0)
    net = NativE.from_data(gnn_small, 8, margin=6.0, encoder=encoder, encoder_kwargs=kwargs,
                           encoder_input=encoder_input).eval()
    full = net.structural_embeddings(None)
    out = layerwise_structural_embeddings(net, batch_size=64)
    assert out.shape == full.shape
    assert torch.allclose(out, full, atol=1e-5), (out - full).abs().max()


def test_layerwise_structural_embeddings_never_build_the_inverse_edges(gnn_small, monkeypatch):
    """The model's graph is read from its triples' CSC: the [2, 2E] edge
    arrays (inputs.graph()) would double the graph's memory beside it."""
    from native_pyg.loader import neighbor_loader as loader
    torch.manual_seed(0)
    net = NativE.from_data(gnn_small, 8, margin=6.0, encoder='rgcn').eval()
    full = net.structural_embeddings(None)
    monkeypatch.setattr(loader, 'add_inverse_edges', None)  # TrainingGraph.edges() would fail
    monkeypatch.setattr(type(net.inputs), 'graph', None)
    out = layerwise_structural_embeddings(net, batch_size=64)
    assert torch.allclose(out, full, atol=1e-5), (out - full).abs().max()


def test_one_line_errors(gnn_small):
    encoder = RGCNEncoder(C, R)
    x, (edge_index, edge_type) = torch.randn(N, C), _graph()
    cases = [
        (ValueError, 'structural encoder',
         lambda: layerwise_structural_embeddings(NativE.from_data(gnn_small, 8))),
        (TypeError, 'lacks the per-layer API',
         lambda: layerwise_inference(torch.nn.Linear(C, C), x, edge_index, edge_type)),
        (ValueError, r'x must have shape \[num_nodes=40',
         lambda: layerwise_inference(encoder, x, edge_index, edge_type, num_nodes=40)),
        (ValueError, 'edge_index must have shape',
         lambda: layerwise_inference(encoder, x, edge_index[0], edge_type)),
        (ValueError, 'edge_type must have shape',
         lambda: layerwise_inference(encoder, x, edge_index, edge_type[1:])),
        (ValueError, 'outside',
         lambda: layerwise_inference(encoder, x[:20], edge_index, edge_type)),
        (ValueError, 'batch_size must be >= 1',
         lambda: layerwise_inference(encoder, x, edge_index, edge_type, batch_size=0)),
        (ValueError, 'give the graph as edge_index and edge_type or as neighbourhoods',
         lambda: layerwise_inference(encoder, x, edge_index, edge_type, neighbourhoods=
                                     InNeighbourhoods.from_edges(edge_index, edge_type, N))),
        (ValueError, 'neighbourhoods cover 32 nodes, x has 36',
         lambda: layerwise_inference(encoder, x, None, None, neighbourhoods=
                                     InNeighbourhoods.from_edges(edge_index, edge_type, 32))),
        (ValueError, 'needs edge_index and edge_type',
         lambda: layerwise_inference(encoder, x, None, None)),
        (ValueError, 'out must have shape',
         lambda: layerwise_inference(encoder, x, edge_index, edge_type, out=torch.empty(3, C))),
        (ValueError, 'share memory',
         lambda: layerwise_inference(RGCNEncoder(C, R, num_layers=1), x, edge_index, edge_type,
                                     out=x)),
    ]
    for error, match, call in cases:
        with pytest.raises(error, match=match) as info:
            call()
        assert '\n' not in str(info.value)


@pytest.mark.parametrize('batch_size', [5, 100])
@pytest.mark.parametrize('name', ['rgcn', 'compgcn-corr'])
def test_layers_written_to_disk_equal_the_in_memory_pass(name, batch_size, tmp_path):
    # issue 40: intermediate layers through the feature-store writer, not [N, D] tensors
    torch.manual_seed(0)
    encoder = ENCODERS[name](3).eval()
    x, (edge_index, edge_type) = torch.randn(N, C), _graph()
    memory = layerwise_inference(encoder, x, edge_index, edge_type, batch_size=batch_size)
    disk = layerwise_inference(encoder, x, edge_index, edge_type, batch_size=batch_size,
                               scratch=str(tmp_path))
    # the last layer too stays on disk, read by row id: no [N, D] tensor is returned
    assert isinstance(disk, LayerRows) and disk.shape == memory.shape
    assert [p.name for p in tmp_path.iterdir()] == ['layer2']  # the others are removed
    assert torch.equal(disk[None], memory)  # float32 rows stored as float32: bit for bit
    assert torch.equal(disk[torch.tensor([7, 0, 7])], memory[[7, 0, 7]])
    disk.close()
    assert list(tmp_path.iterdir()) == []
    # into a given tensor, with the intermediate layers on disk
    out = torch.empty_like(memory)
    assert layerwise_inference(encoder, x, edge_index, edge_type, batch_size=batch_size,
                               scratch=str(tmp_path), out=out) is out
    assert torch.equal(out, memory) and list(tmp_path.iterdir()) == []


def test_auto_scratch_goes_to_disk_past_the_bound(gnn_small, monkeypatch):
    import native_pyg.nn.layerwise as layerwise
    model = NativE.from_data(gnn_small, hidden_channels=8, encoder='rgcn').eval()
    memory = layerwise_structural_embeddings(model, batch_size=50, scratch=None)
    seen = []
    real = layerwise.layerwise_inference

    def spy(*args, **kwargs):
        seen.append(kwargs.get('scratch'))
        return real(*args, **kwargs)

    monkeypatch.setattr(layerwise, 'layerwise_inference', spy)
    monkeypatch.setattr(layerwise, 'LAYER_SCRATCH_BYTES', 100)
    disk = layerwise_structural_embeddings(model, batch_size=50)
    assert seen and seen[0] is not None  # a temporary directory was used
    assert torch.equal(disk[None], memory)
    directory = seen[0]
    assert osp.isdir(directory)
    disk.close()
    assert not osp.exists(directory)  # removed with the rows


@pytest.mark.parametrize('to_disk', [False, True])
def test_structure_plus_modalities_input_is_built_once_never_as_a_second_table(
        gnn_small, monkeypatch, to_disk):
    import native_pyg.nn.layerwise as layerwise
    model = NativE.from_data(gnn_small, hidden_channels=8, encoder='rgcn',
                             encoder_input='structure+modalities').eval()
    with torch.no_grad():
        expected = model.structural_embeddings(None)  # the full-graph pass
    monkeypatch.setattr(layerwise, 'LAYER_SCRATCH_BYTES', 100 if to_disk else 2 ** 40)
    got = layerwise_structural_embeddings(model, batch_size=7)
    assert isinstance(got, LayerRows) == to_disk
    torch.testing.assert_close(got[None] if to_disk else got, expected, rtol=1e-5, atol=1e-5)
    # a streamed evaluation reads the disk rows through the model's cache
    with model.cached_entities(structure=got):
        torch.testing.assert_close(model.structural_embeddings(torch.tensor([3, 1])),
                                   expected[[3, 1]], rtol=1e-5, atol=1e-5)


def test_batches_are_bounded_by_in_edges(monkeypatch):
    import native_pyg.nn.layerwise as lw
    seen = []

    def spy(i, x_sub, ei, et, state=None, num_targets=None):
        seen.append((num_targets, ei.size(1)))
        return forward(i, x_sub, ei, et, state, num_targets=num_targets)

    monkeypatch.setattr(lw, 'LAYER_EDGES', 1024)
    gen = torch.Generator().manual_seed(0)
    n, e = 1000, 8000  # 8 in-edges per node on average: about 128 targets per batch
    edge_index = torch.randint(0, n, (2, e), generator=gen)
    edge_type = torch.randint(0, 3, (e,), generator=gen)
    from native_pyg.nn.gnn import RGCNEncoder
    encoder = RGCNEncoder(16, 3, num_layers=2)
    forward = encoder.layer_forward
    encoder.layer_forward = spy
    x = torch.randn(n, 16, generator=gen)
    small = lw.layerwise_inference(encoder, x, edge_index, edge_type, batch_size=100_000)
    assert all(edges <= 1024 for _, edges in seen) and 2 * 8 <= len(seen) <= 2 * 10
    assert sum(targets for targets, _ in seen) == 2 * n
    seen.clear()
    monkeypatch.setattr(lw, 'LAYER_EDGES', 10 ** 9)
    whole = lw.layerwise_inference(encoder, x, edge_index, edge_type, batch_size=100_000)
    assert seen == [(n, e), (n, e)]  # one batch per layer
    torch.testing.assert_close(small, whole)


def test_local_index_maps_a_subgraphs_nodes_to_their_positions():
    from native_pyg.loader.neighbourhood import local_index
    local = local_index(torch.tensor([4, 0, 2]), 6)
    assert local.tolist() == [1, -1, 2, -1, 0, -1]
