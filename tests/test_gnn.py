"""Structural GNN encoders, neighbour-sampled training steps and their
integration with NativE, the trainer and the CLI."""
import pytest
import torch

from native_pyg.data import split_edges, split_triples
from native_pyg.data.loader import (KGBatch, KGNeighborLoader, NeighborSamplingUnavailable,
                                    TrainingGraph, neighbor_sampling_backend)
from native_pyg.data.relations import triple_keys
from native_pyg.datasets import SyntheticMMKG
from native_pyg.nn import NativE
from native_pyg.nn.gnn import (CompGCNConv, CompGCNEncoder, RGCNEncoder, add_inverse_edges,
                               circular_correlation)
from native_pyg.training import BernoulliNegativeSampler, RunConfig, Trainer, build_model
from native_pyg.training.batching import TripleBatches


@pytest.fixture(scope='module')
def small():
    return SyntheticMMKG(seed=2, num_entities=200, num_relations=4)[0]


def steps(data, batch_size=64, num_negatives=4, seed=0):
    triples = torch.unique(split_triples(data, 'train'), dim=0)
    sampler = BernoulliNegativeSampler(triples, data['entity'].num_nodes, data.num_relations,
                                       num_negatives, seed=seed)
    return TripleBatches(triples, batch_size, sampler, torch.Generator().manual_seed(seed))


def run_config(encoder, **training):
    run = RunConfig().override([
        'model.hidden_channels=8', 'model.margin=6.0', f'model.encoder={encoder}',
        'model.num_layers=1', 'training.batch_size=128', 'training.num_negatives=8',
        'training.progress=false', 'training.eval_every=0', 'training.lr=0.01'])
    for k, v in training.items():
        setattr(run.training, k, v)
    return run


# --- encoders -----------------------------------------------------------------------
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


def test_native_with_an_encoder_differs_from_the_table_and_reaches_every_parameter(small):
    torch.manual_seed(0)
    shallow = NativE.from_data(small, 8, margin=6.0)
    net = NativE.from_data(small, 8, margin=6.0, encoder='rgcn',
                           encoder_kwargs={'num_layers': 2, 'num_bases': 2},
                           encoder_input='structure+modalities')
    assert 'structure=RGCNEncoder' in repr(net)
    h, r, t = split_triples(small, 'train')[:32].unbind(1)
    assert not torch.allclose(net(h, r, t), shallow(h, r, t))
    net(h, r, t).sum().backward()
    for name, p in net.named_parameters():
        if name.startswith(('rel_emb', 'fusion')):
            continue  # reached through the scorer / ReDAF as before
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # modality encoders feed the GNN input: their gradient also flows through it
    assert any(k.startswith('structural_encoder.') for k in net.state_dict())


def test_a_user_module_is_an_encoder(small):
    from torch_geometric.nn import GraphConv

    class Plain(torch.nn.Module):  # any PyG conv, ignoring the relation types
        def __init__(self, channels):
            super().__init__()
            self.conv = GraphConv(channels, channels)

        def forward(self, x, edge_index, edge_type):
            return self.conv(x, edge_index)

    net = NativE.from_data(small, 8, encoder=Plain(16))
    h, r, t = split_triples(small, 'test')[:5].unbind(1)
    assert net(h, r, t).shape == (5,)
    assert net.score_tails(h, r).shape == (5, small['entity'].num_nodes)


# --- batches and leakage --------------------------------------------------------------
def test_full_graph_steps_hold_every_training_edge_but_the_batch_positives(small):
    graph = TrainingGraph.from_data(small)
    batch = next(iter(TripleBatches(*_args(small), graph=graph)))
    e = split_triples(small, 'train').size(0)
    pos = {tuple(x) for x in batch.pos.tolist()}
    kept = {tuple(x) for x in torch.stack([batch.edge_index[0], batch.edge_type,
                                           batch.edge_index[1]], 1).tolist()}
    expected = set()
    for h, r, t in split_triples(small, 'train').tolist():
        if (h, r, t) not in pos:
            expected |= {(h, r, t), (t, r + small.num_relations, h)}
    assert kept == expected and batch.edge_index.size(1) < 2 * e
    assert batch.n_id.tolist() == list(range(small['entity'].num_nodes))


def _args(data):
    s = steps(data)
    return s.triples, s.batch_size, s.sampler, s.generator


@pytest.mark.parametrize('num_neighbors', [[3], [5, 2], [-1]])
def test_sampled_batches_carry_global_ids_relations_and_modality_rows(small, num_neighbors):
    loader = KGNeighborLoader(small, num_neighbors, steps(small))
    assert len(loader) == len(steps(small))
    train = split_triples(small, 'train')
    train_keys = set(triple_keys(train, small['entity'].num_nodes, small.num_relations).tolist())
    num_rel = small.num_relations
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
        keys = triple_keys(torch.stack([h, r, t], 1), small['entity'].num_nodes, num_rel)
        assert set(keys.tolist()) <= train_keys
        assert torch.equal(train[batch.e_id], torch.stack([h, r, t], 1))
        # no positive of the batch is a message edge, in either direction
        pos_keys = triple_keys(batch.pos, small['entity'].num_nodes, num_rel)
        assert not torch.isin(keys, pos_keys).any()
        # feature rows fetched by global id
        for m in ('image', 'text', 'numeric'):
            assert torch.equal(batch.x_dict[m], small[m].x[n_id])
            assert torch.equal(batch.mask_dict[m], small[m].mask[n_id])
        if i == 2:
            break


def test_all_neighbours_sampled_match_full_graph_inference(small):
    """With every neighbour sampled, a 1-layer encoder's embeddings of the
    batch entities equal full-graph inference on the training graph minus the
    batch positives (float32, atol 1e-5)."""
    for enc, kwargs in (('rgcn', {'num_layers': 1, 'num_bases': 2}),
                        ('compgcn', {'num_layers': 1, 'composition': 'mult'})):
        net = NativE.from_data(small, 8, encoder=enc, encoder_kwargs=kwargs,
                               encoder_input='structure+modalities').eval()
        batch = next(iter(KGNeighborLoader(small, [-1], steps(small))))
        entities = torch.unique(torch.cat([batch.pos[:, 0], batch.neg.flatten()]))
        with torch.no_grad(), net.subgraph(**batch.subgraph_kwargs()):
            sampled = net.structural_embeddings(entities)
        # the reference: the whole graph without the positives, built independently
        pos = {tuple(x) for x in batch.pos.tolist()}
        keep = torch.tensor([tuple(x) not in pos for x in split_triples(small, 'train').tolist()])
        ei, et = split_edges(small, 'train')
        net.set_graph(ei[:, keep], et[keep])
        with torch.no_grad():
            full = net.structural_embeddings(entities)
        assert torch.allclose(sampled, full, atol=1e-5), enc
        # and positives matter: with them, the embeddings differ
        net.set_graph(ei, et)
        with torch.no_grad():
            assert not torch.allclose(net.structural_embeddings(entities), full, atol=1e-5)


def test_a_step_only_scores_entities_of_its_subgraph(small):
    net = NativE.from_data(small, 8, encoder='rgcn', encoder_kwargs={'num_layers': 1})
    with net.subgraph(torch.tensor([0, 1]), torch.tensor([[0], [1]]), torch.tensor([0])):
        with pytest.raises(ValueError, match='not a node of the active subgraph'):
            net(torch.tensor([0]), torch.tensor([0]), torch.tensor([5]))


# --- training -------------------------------------------------------------------------
def _fixed_loss(trainer, batches):
    trainer.model.eval()
    with torch.no_grad():
        total = 0.0
        for b in batches:
            with trainer._on_subgraph(b):
                total += float(trainer._kgc_loss(b))
    return total / len(batches)


@pytest.mark.parametrize('encoder,num_neighbors', [('rgcn', None), ('compgcn', None),
                                                   ('rgcn', [10, 5]), ('compgcn', [10, 5])])
def test_one_epoch_lowers_the_loss(small, encoder, num_neighbors):
    run = run_config(encoder, num_neighbors=num_neighbors)
    run.model.num_layers = 2
    trainer = Trainer(build_model(small, run), small, run)
    probe = list(TripleBatches(*_args(small), graph=TrainingGraph.from_data(small)))[:3]
    before = _fixed_loss(trainer, probe)
    trainer.train_epoch()
    after = _fixed_loss(trainer, probe)
    assert after < before - 0.01, (before, after)


def test_resume_with_an_encoder_is_exact(small, tmp_path):
    torch.set_num_threads(1)
    for num_neighbors in (None, [4, 2]):
        run = run_config('rgcn', num_neighbors=num_neighbors, epochs=2)
        full = Trainer(build_model(small, run), small, run, out_dir=str(tmp_path / 'a'))
        full.fit()
        first = Trainer(build_model(small, run), small, run, out_dir=str(tmp_path / 'b'))
        first.fit(epochs=1)
        second = Trainer(build_model(small, run), small, run, out_dir=str(tmp_path / 'b'))
        second.resume(str(tmp_path / 'b' / 'last.pt'))
        second.fit()
        for k, v in full.model.state_dict().items():
            assert torch.equal(v, second.model.state_dict()[k]), (num_neighbors, k)
        for d in ('a', 'b'):
            for f in (tmp_path / d).iterdir():
                f.unlink()


def test_evaluation_uses_the_full_training_graph(small):
    run = run_config('compgcn', epochs=1)
    trainer = Trainer(build_model(small, run), small, run)
    trainer.fit()
    metrics = trainer.evaluate('valid')
    model = trainer.model
    h, r, t = split_triples(small, 'valid').unbind(1)
    # the evaluator's cached path agrees with scoring triples one by one
    with torch.no_grad():
        direct = model.score_tails(h[:4], r[:4])
        assert torch.allclose(direct.gather(1, t[:4, None]).squeeze(1), model(h[:4], r[:4], t[:4]),
                              atol=1e-4)
    assert 0.0 < metrics['both']['mrr'] <= 1.0


def test_without_a_sampling_backend_only_sampling_fails(small, monkeypatch):
    import torch_geometric.typing as pyg_typing
    monkeypatch.setattr(pyg_typing, 'WITH_PYG_LIB', False)
    monkeypatch.setattr(pyg_typing, 'WITH_TORCH_SPARSE', False)
    assert neighbor_sampling_backend() is None
    run = run_config('rgcn', num_neighbors=[5])
    with pytest.raises(NeighborSamplingUnavailable, match='pip install --no-build-isolation '
                                                          'torch_sparse'):
        Trainer(build_model(small, run), small, run)
    run = run_config('rgcn', num_neighbors=None, epochs=1)  # full graph still trains
    Trainer(build_model(small, run), small, run).fit()


def test_num_neighbors_without_an_encoder_is_an_error(small):
    run = run_config('none', num_neighbors=[5])
    with pytest.raises(ValueError, match='needs|GNN encoder'):
        Trainer(build_model(small, run), small, run)


def test_batches_move_with_pinned_memory_api(small):
    batch = next(iter(KGNeighborLoader(small, [2], steps(small))))
    moved = batch.to('cpu', non_blocking=True)
    assert isinstance(moved, KGBatch) and torch.equal(moved.n_id, batch.n_id)
    assert set(moved.x_dict) == set(batch.x_dict)


# --- command line ---------------------------------------------------------------------
def test_cli_train_evaluate_predict_with_an_encoder(tmp_path, capsys, monkeypatch):
    import json
    from native_pyg.cli import main
    out = tmp_path / 'run'
    fast = ['--set', 'model.hidden_channels=8', '--set', 'training.batch_size=2048',
            '--set', 'training.num_negatives=4', '--set', 'training.eval_every=1',
            '--set', 'training.progress=false', '--set', 'model.num_bases=2', '--epochs', '1']
    assert main(['train', '--dataset', 'synthetic', '--encoder', 'rgcn', '--num-neighbors', '5,3',
                 '--out', str(out), *fast]) == 0
    saved = json.loads((out / 'metrics.json').read_text())
    assert 0 < saved['test']['both']['mrr'] <= 1
    assert main(['evaluate', '--checkpoint', str(out / 'model.pt'), '--out',
                 str(tmp_path / 'm.json')]) == 0
    got = json.loads((tmp_path / 'm.json').read_text())
    assert got['both']['mrr'] == pytest.approx(saved['test']['both']['mrr'], rel=1e-5)
    assert main(['predict', '--checkpoint', str(out / 'model.pt'), '--head', 'entity_3',
                 '--relation', 'relation_1', '--k', '3']) == 0
    assert 'top 3 tails for (entity_3, relation_1, ?)' in capsys.readouterr().out
    # bad values and a missing backend: one line, exit code 2
    assert main(['train', '--dataset', 'synthetic', '--encoder', 'rgcn', '--num-neighbors', 'x',
                 '--out', str(tmp_path / 'bad')]) == 2
    assert '--num-neighbors' in capsys.readouterr().err
    import torch_geometric.typing as pyg_typing
    monkeypatch.setattr(pyg_typing, 'WITH_PYG_LIB', False)
    monkeypatch.setattr(pyg_typing, 'WITH_TORCH_SPARSE', False)
    assert main(['train', '--dataset', 'synthetic', '--encoder', 'rgcn', '--num-neighbors', '5',
                 '--out', str(tmp_path / 'nobackend'), *fast]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'torch_sparse' in err[0]


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


def test_worker_processes_get_the_same_steps(small):
    """Negatives are drawn in the main process: with a worker (persistent
    across epochs) the steps' positives and negatives are those of
    num_workers=0; only the neighbourhoods are sampled in the worker."""
    plain = KGNeighborLoader(small, [3, 2], steps(small, batch_size=256))
    worker = KGNeighborLoader(small, [3, 2], steps(small, batch_size=256), num_workers=1,
                              persistent_workers=True)
    for _ in range(2):  # two epochs through the same persistent worker
        for a, b in zip(plain, worker):
            assert torch.equal(a.pos, b.pos) and torch.equal(a.neg, b.neg)
            assert torch.equal(a.corrupt_head, b.corrupt_head)
            assert set(b.n_id.tolist()) >= set(b.pos[:, 0].tolist())
