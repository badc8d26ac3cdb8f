"""Structural GNN encoders and NativE composed with them."""
import pytest
import torch

from native_pyg.data import split_edges, split_triples
from native_pyg.loader.neighbor_loader import KGNeighborLoader, TrainingGraph
from native_pyg.nn import NativE
from native_pyg.nn.gnn import (CompGCNConv, CompGCNEncoder, RGCNEncoder, add_inverse_edges,
                               circular_correlation)
from native_pyg.pipeline import build_model
from native_pyg.training import Trainer, self_adversarial_loss
from native_pyg.training.batching import TripleBatches
from tests.conftest import gnn_run_config, gnn_steps
from tests.helpers.runs import seeded_trainer


def test_circular_correlation_matches_its_definition():
    a, b = torch.randn(3, 7), torch.randn(3, 7)
    naive = torch.stack([(a * b.roll(-k, dims=-1)).sum(-1) for k in range(7)], -1)
    assert torch.allclose(circular_correlation(a, b), naive, atol=1e-5)


@pytest.mark.parametrize('composition', ['sub', 'mult', 'corr'])
def test_compgcn_conv_is_a_mean_per_direction_plus_loop(composition):
    torch.manual_seed(0)
    conv = CompGCNConv(5, 6, num_relations=2, composition=composition, bias=False)
    x, rel = torch.randn(4, 5), torch.randn(4, 5)
    edge_index = torch.tensor([[0, 1, 2, 3], [3, 3, 3, 0]])
    edge_type = torch.tensor([0, 1, 2, 3])  # to node 3: two forward edges and one inverse
    out, rel_out = conv(x, rel, edge_index, edge_type)
    phi = {'sub': lambda a, b: a - b, 'mult': lambda a, b: a * b,
           'corr': circular_correlation}[composition]
    fwd = (phi(x[0], rel[0]) @ conv.weight_in + phi(x[1], rel[1]) @ conv.weight_in) / 2
    inv = phi(x[2], rel[2]) @ conv.weight_out
    loop = phi(x[3], conv.loop_rel[0]) @ conv.weight_loop
    assert torch.allclose(out[3], (fwd + inv + loop) / 3, atol=1e-5)
    # a node without incoming edges keeps only its self-loop term
    assert torch.allclose(out[1], (phi(x[1], conv.loop_rel[0]) @ conv.weight_loop) / 3, atol=1e-5)
    assert torch.allclose(rel_out, rel @ conv.weight_rel)


def test_encoders_validate_and_keep_the_shape():
    ei, et = add_inverse_edges(torch.tensor([[0, 1], [1, 2]]), torch.tensor([0, 1]), 2)
    assert ei.tolist() == [[0, 1, 1, 2], [1, 2, 0, 1]] and et.tolist() == [0, 1, 2, 3]
    for enc in (RGCNEncoder(8, 2, num_layers=2, num_bases=2, dropout=0.1),
                RGCNEncoder(8, 2, num_blocks=4), CompGCNEncoder(8, 2, composition='corr')):
        assert enc(torch.randn(3, 8), ei, et).shape == (3, 8)
    with pytest.raises(ValueError, match='num_layers'):
        RGCNEncoder(8, 2, num_layers=0)
    with pytest.raises(ValueError, match='num_blocks=3 must divide'):
        RGCNEncoder(8, 2, num_blocks=3)
    with pytest.raises(ValueError, match='unknown composition'):
        CompGCNEncoder(8, 2, composition='add')
    with pytest.raises(ValueError, match='unknown encoder'):
        NativE(3, 2, 4, encoder='gat')


def test_native_with_an_encoder_differs_from_the_table_and_reaches_every_parameter(gnn_small):
    torch.manual_seed(0)
    shallow = NativE.from_data(gnn_small, 8, margin=6.0)
    net = NativE.from_data(gnn_small, 8, margin=6.0, encoder='rgcn',
                           encoder_kwargs={'num_layers': 2, 'num_bases': 2},
                           encoder_input='structure+modalities')
    assert 'structure=RGCNEncoder' in repr(net)
    h, r, t = split_triples(gnn_small, 'train')[:32].unbind(1)
    assert not torch.allclose(net(h, r, t), shallow(h, r, t))
    net(h, r, t).sum().backward()
    for name, p in net.named_parameters():
        if name.startswith(('rel_emb', 'fusion')):
            continue  # reached through the scorer / ReDAF as before
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # modality encoders feed the GNN input: their gradient also flows through it
    assert any(k.startswith('structural_encoder.') for k in net.state_dict())


def test_a_user_module_is_an_encoder(gnn_small):
    from torch_geometric.nn import GraphConv

    class Plain(torch.nn.Module):  # any PyG conv, ignoring the relation types
        def __init__(self, channels):
            super().__init__()
            self.conv = GraphConv(channels, channels)

        def forward(self, x, edge_index, edge_type):
            return self.conv(x, edge_index)

    net = NativE.from_data(gnn_small, 8, encoder=Plain(16))
    h, r, t = split_triples(gnn_small, 'test')[:5].unbind(1)
    assert net(h, r, t).shape == (5,)
    assert net.score_tails(h, r).shape == (5, gnn_small['entity'].num_nodes)


def _args(data):
    s = gnn_steps(data)
    return s.triples, s.batch_size, s.sampler, s.generator


def test_all_neighbours_sampled_match_full_graph_inference(gnn_small):
    """With every neighbour sampled, a 1-layer encoder's embeddings of the
    batch entities equal full-graph inference on the training graph minus the
    batch positives (float32, atol 1e-5)."""
    for enc, kwargs in (('rgcn', {'num_layers': 1, 'num_bases': 2}),
                        ('compgcn', {'num_layers': 1, 'composition': 'mult'})):
        net = NativE.from_data(gnn_small, 8, encoder=enc, encoder_kwargs=kwargs,
                               encoder_input='structure+modalities').eval()
        batch = next(iter(KGNeighborLoader(gnn_small, [-1], gnn_steps(gnn_small))))
        entities = torch.unique(torch.cat([batch.pos[:, 0], batch.neg.flatten()]))
        with torch.no_grad(), net.subgraph(**batch.subgraph_kwargs()):
            sampled = net.structural_embeddings(entities)
        # the reference: the whole graph without the positives, built independently
        pos = {tuple(x) for x in batch.pos.tolist()}
        keep = torch.tensor([tuple(x) not in pos for x in split_triples(gnn_small, 'train').tolist()])
        ei, et = split_edges(gnn_small, 'train')
        net.inputs.set_graph(ei[:, keep], et[keep])
        with torch.no_grad():
            full = net.structural_embeddings(entities)
        assert torch.allclose(sampled, full, atol=1e-5), enc
        # and positives matter: with them, the embeddings differ
        net.inputs.set_graph(ei, et)
        with torch.no_grad():
            assert not torch.allclose(net.structural_embeddings(entities), full, atol=1e-5)


@pytest.mark.parametrize('encoder,kwargs', [('rgcn', {'num_blocks': 2}),
                                            ('compgcn', {'composition': 'sub'})])
@pytest.mark.parametrize('hops', [[4, 3], [5], [3, 2, 2]])
def test_layers_trimmed_per_hop_equal_the_untrimmed_pass_on_the_seeds(gnn_small, encoder,
                                                                      kwargs, hops):
    """A 2-layer encoder over a sampled subgraph with its per-hop sizes
    computes fewer rows and edges per layer, and the seeds' embeddings and
    the table's gradient equal the untrimmed pass (sampling fewer, as many or
    more hops than layers)."""
    batch = next(iter(KGNeighborLoader(gnn_small, hops, gnn_steps(gnn_small))))
    nodes, edges = batch.num_sampled_nodes, batch.num_sampled_edges
    assert len(nodes) == len(hops) + 1 and sum(nodes) == batch.n_id.numel()
    assert sum(edges) == batch.edge_type.numel()
    # hop h's edges end in the nodes first reached at hop h - 1
    ends = torch.tensor([0, *nodes]).cumsum(0)
    col, start = batch.edge_index[1], 0
    for h, e in enumerate(edges):
        assert bool(((col[start:start + e] >= ends[h]) & (col[start:start + e] < ends[h + 1])).all())
        start += e
    seeds = batch.n_id[:nodes[0]]
    out = {}
    for trimmed in (False, True):
        net = NativE.from_data(gnn_small, 8, encoder=encoder,
                               encoder_kwargs=dict(kwargs, num_layers=2)).eval()
        calls = []
        layer_forward = net.structural_encoder.layer_forward
        net.structural_encoder.layer_forward = lambda i, x, ei, et, *a, **k: (
            calls.append((k.get('num_targets') or x.size(0), ei.size(1)))
            or layer_forward(i, x, ei, et, *a, **k))
        sub = batch.subgraph_kwargs()
        if not trimmed:
            sub.update(num_sampled_nodes=None, num_sampled_edges=None)
        with net.subgraph(**sub):
            emb = net.structural_embeddings(seeds)
        emb.pow(2).sum().backward()
        out[trimmed] = emb.detach(), net.entity_emb.weight.grad, calls
    assert torch.allclose(out[True][0], out[False][0], atol=1e-5)
    assert torch.allclose(out[True][1], out[False][1], atol=1e-5)
    full, trim = out[False][2], out[True][2]
    assert trim[-1] == (nodes[0], edges[0])  # the last layer: seeds from hop-1 edges
    assert sum(n for n, _ in trim) < sum(n for n, _ in full)
    assert sum(e for _, e in trim) < sum(e for _, e in full) or len(hops) == 1
    with net.subgraph(**batch.subgraph_kwargs()):
        with pytest.raises(ValueError, match='not a seed of the active subgraph'):
            net.structural_embeddings(batch.n_id[-1:])


def test_a_step_only_scores_entities_of_its_subgraph(gnn_small):
    net = NativE.from_data(gnn_small, 8, encoder='rgcn', encoder_kwargs={'num_layers': 1})
    with net.subgraph(torch.tensor([0, 1]), torch.tensor([[0], [1]]), torch.tensor([0])):
        with pytest.raises(ValueError, match='not a node of the active subgraph'):
            net(torch.tensor([0]), torch.tensor([0]), torch.tensor([5]))


def _fixed_loss(trainer, batches):
    """The KGC loss (no regularisation) of fixed batches, each on its subgraph."""
    model = trainer.model
    model.eval()
    with torch.no_grad():
        total = 0.0
        for b in batches:
            h, r, t = b.pos.unbind(1)
            with model.subgraph(**b.subgraph_kwargs()):
                pos, neg = model.score_negatives(h, r, t, b.neg, b.corrupt_head)
            total += float(self_adversarial_loss(pos, neg, trainer.cfg.adv_temperature))
    return total / len(batches)


@pytest.mark.parametrize('encoder,num_neighbors', [('rgcn', None), ('compgcn', None),
                                                   ('rgcn', [10, 5]), ('compgcn', [10, 5])])
def test_one_epoch_lowers_the_loss(gnn_small, encoder, num_neighbors):
    run = gnn_run_config(encoder, num_neighbors=num_neighbors)
    run.model.num_layers = 2
    trainer = Trainer(build_model(gnn_small, run), gnn_small, run)
    probe = list(TripleBatches(*_args(gnn_small), graph=TrainingGraph.from_data(gnn_small)))[:3]
    before = _fixed_loss(trainer, probe)
    trainer.train_epoch()
    after = _fixed_loss(trainer, probe)
    assert after < before - 0.01, (before, after)


def test_resume_with_an_encoder_is_exact(gnn_small, tmp_path):
    torch.set_num_threads(1)
    for num_neighbors in (None, [4, 2]):
        run = gnn_run_config('rgcn', num_neighbors=num_neighbors, epochs=2)
        full = seeded_trainer(gnn_small, run, out_dir=str(tmp_path / 'a'))
        full.fit()
        first = seeded_trainer(gnn_small, run, out_dir=str(tmp_path / 'b'))
        first.fit(epochs=1)
        second = seeded_trainer(gnn_small, run, out_dir=str(tmp_path / 'b'))
        second.resume(str(tmp_path / 'b' / 'last.pt'))
        second.fit()
        for k, v in full.model.state_dict().items():
            assert torch.equal(v, second.model.state_dict()[k]), (num_neighbors, k)
        for d in ('a', 'b'):
            for f in (tmp_path / d).iterdir():
                f.unlink()


def test_evaluation_uses_the_full_training_graph(gnn_small):
    run = gnn_run_config('compgcn', epochs=1)
    trainer = Trainer(build_model(gnn_small, run), gnn_small, run)
    trainer.fit()
    metrics = trainer.evaluate('valid')
    model = trainer.model
    h, r, t = split_triples(gnn_small, 'valid').unbind(1)
    # the evaluator's cached path agrees with scoring triples one by one
    with torch.no_grad():
        direct = model.score_tails(h[:4], r[:4])
        assert torch.allclose(direct.gather(1, t[:4, None]).squeeze(1), model(h[:4], r[:4], t[:4]),
                              atol=1e-4)
    assert 0.0 < metrics['both']['mrr'] <= 1.0


@pytest.mark.parametrize('decomposition', [{}, {'num_bases': 3}, {'num_blocks': 2}])
def test_edgewise_rgcn_equals_pyg_rgcnconv(decomposition):
    from torch_geometric.nn import RGCNConv
    from native_pyg.nn.gnn import EdgewiseRGCNConv
    torch.manual_seed(0)
    ours = EdgewiseRGCNConv(6, 4, 5, aggr='mean', **decomposition)
    ref = RGCNConv(6, 4, 5, aggr='mean', **decomposition)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(9, 6)
    edge_index = torch.randint(0, 9, (2, 40))
    edge_type = torch.randint(0, 5, (40,))
    assert torch.allclose(ours(x, edge_index, edge_type), ref(x, edge_index, edge_type),
                          atol=1e-5)


def test_group_mean_weights_count_only_present_groups_when_groups_outnumber_edges():
    from native_pyg.nn.gnn import group_mean_weights
    group = torch.tensor([3, 0, 3, 7, 3, 0, 9])
    expected = torch.tensor([1 / 3, 1 / 2, 1 / 3, 1.0, 1 / 3, 1 / 2, 1.0])
    sparse = group_mean_weights(group, 10 ** 9, torch.float)  # a dense count would be 4 GB
    assert torch.equal(sparse, expected)
    small = group_mean_weights(group % 5, 5, torch.float)  # 5 groups, 7 edges: the scatter path
    assert torch.equal(small, expected)  # 3, 0, 3, 2, 3, 0, 4: the same group sizes


def _rgcn_pair(decomposition):
    """Our EdgewiseRGCNConv and PyG's RGCNConv in float64 with the same weights."""
    from torch_geometric.nn import RGCNConv
    from native_pyg.nn.gnn import EdgewiseRGCNConv
    torch.manual_seed(0)
    ours = EdgewiseRGCNConv(6, 4, 5, aggr='mean', **decomposition).double()
    ref = RGCNConv(6, 4, 5, aggr='mean', **decomposition).double()
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def _assert_same_values_and_gradients(ours, ref, got, want, x):
    """``got`` (ours) equals ``want`` (PyG's), and so do the gradients of a
    random weighting of them with respect to ``x`` and every parameter."""
    torch.testing.assert_close(got, want)
    w = torch.randn_like(got)
    mine = torch.autograd.grad((got * w).sum(), [x, *ours.parameters()])
    theirs = torch.autograd.grad((want * w).sum(), [x, *ref.parameters()])
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('decomposition', [{}, {'num_bases': 3}, {'num_blocks': 2}])
def test_edgewise_rgcn_on_a_bipartite_layer_equals_pyg_on_the_targets(decomposition):
    # fewer targets than sources: R-GCN with bases sums its inputs per (target, basis)
    # first; values and every gradient equal PyG's full pass on the targets
    ours, ref = _rgcn_pair(decomposition)
    x = torch.randn(9, 6, dtype=torch.double, requires_grad=True)
    edge_index = torch.stack([torch.randint(0, 9, (40,)), torch.randint(0, 4, (40,))])
    edge_index[1, :3] = 2  # a target with several edges, target 3 possibly with none
    edge_type = torch.randint(0, 5, (40,))
    _assert_same_values_and_gradients(ours, ref, ours(x, edge_index, edge_type, num_targets=4),
                                      ref(x, edge_index, edge_type)[:4], x)


@pytest.mark.parametrize('graph,decomposition,path', [
    ('sparse', {'num_bases': 3}, '_group_messages'),
    ('sparse', {}, '_group_messages'),
    ('sparse', {'num_blocks': 2}, '_group_messages'),
    ('dense', {'num_bases': 3}, '_basis_messages'),
])
def test_edgewise_rgcn_group_and_basis_paths_equal_pyg(graph, decomposition, path):
    # with fewer (relation, destination) groups than bases x destinations each group's
    # mean is multiplied by W_r once; otherwise the bases' products are summed. Either
    # way values and every gradient equal PyG's RGCNConv, on whole and bipartite layers
    from unittest import mock
    from native_pyg.nn.gnn import EdgewiseRGCNConv
    ours, ref = _rgcn_pair(decomposition)
    x = torch.randn(9, 6, dtype=torch.double, requires_grad=True)
    if graph == 'sparse':  # 2 relations: at most 2 x 9 groups < 3 bases x 9 destinations
        edge_index = torch.randint(0, 9, (2, 30))
        edge_type = torch.randint(3, 5, (30,))
    else:  # every (relation, destination) pair: 5 x 9 groups >= 3 x 9
        dst, rel = torch.arange(9).repeat(5), torch.arange(5).repeat_interleave(9)
        edge_index = torch.stack([torch.randint(0, 9, (90,)), torch.cat([dst, dst])])
        edge_type = torch.cat([rel, rel])
    original = vars(EdgewiseRGCNConv)[path]
    for targets in (None, 4):
        keep = slice(None) if targets is None else edge_index[1] < targets
        ei, et = edge_index[:, keep], edge_type[keep]
        with mock.patch.object(EdgewiseRGCNConv, path, autospec=True,
                               side_effect=original) as spy:
            got = ours(x, ei, et, num_targets=targets)
        assert spy.call_count == 1
        _assert_same_values_and_gradients(ours, ref, got, ref(x, ei, et)[:targets], x)


def test_edgewise_rgcn_without_edges_gives_the_root_term():
    from native_pyg.nn.gnn import EdgewiseRGCNConv
    conv = EdgewiseRGCNConv(6, 4, 5, num_bases=3, aggr='mean')
    x = torch.randn(7, 6)
    empty = torch.empty(2, 0, dtype=torch.long)
    out = conv(x, empty, torch.empty(0, dtype=torch.long))
    torch.testing.assert_close(out, x @ conv.root + conv.bias)


def test_edgewise_rgcn_keeps_the_bases_products_under_bf16_autocast():
    # few (relation, destination) groups, but under autocast a few large bf16
    # products beat one small product per relation: the bases' path, same values
    from unittest import mock
    from native_pyg.nn.gnn import EdgewiseRGCNConv
    torch.manual_seed(0)
    conv = EdgewiseRGCNConv(6, 4, 5, num_bases=3, aggr='mean')
    x = torch.randn(9, 6)
    edge_index, edge_type = torch.randint(0, 9, (2, 30)), torch.randint(3, 5, (30,))
    fp32 = conv(x, edge_index, edge_type)
    original = vars(EdgewiseRGCNConv)['_basis_messages']
    with mock.patch.object(EdgewiseRGCNConv, '_basis_messages', autospec=True,
                           side_effect=original) as spy, \
            torch.autocast('cpu', dtype=torch.bfloat16):
        bf16 = conv(x, edge_index, edge_type)
    assert spy.call_count == 1
    torch.testing.assert_close(bf16.float(), fp32, atol=0.05, rtol=0.05)
