import warnings

import pytest
import torch

from native_pyg.evaluation import (TIES, LinkPredictionEvaluator,
                                   StreamingLinkPredictionEvaluator, sample_queries)
from native_pyg.nn import NativE
from tests.conftest import fill_wildkgc_root, needs_shared
from tests.evaluation.native_problems import (CONFIGS, KINDS, NAN_ENTITY, N, R, assert_same,
                                              build, problem)

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('ties', TIES)
def test_streamed_ranks_equal_in_memory_ranks(kind, ties):
    train, known, test = problem()
    net = build(kind, train)
    expected = LinkPredictionEvaluator(N, known, ties=ties).ranks(net, test)
    for chunk, batch in CONFIGS:
        ev = StreamingLinkPredictionEvaluator(N, known, ties=ties, candidate_chunk=chunk,
                                              batch_size=batch)
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # no second stream
            assert_same(expected, ev.ranks(net, test))
        assert ev.passes == 1


@pytest.mark.parametrize('compile', [False, True])
def test_tiles_inside_chunks_and_compiled_kernels_keep_the_in_memory_ranks(monkeypatch, compile):
    # a chunk is fused and scored in tiles (several relations per tile, head and tail
    # queries of one relation scored at once); tiles of 3 rows cross every chunk
    from native_pyg.evaluation import streamed
    from native_pyg.kernels import distance_kernels
    from native_pyg.nn import redaf
    monkeypatch.setattr(redaf, 'FUSE_TILE', 3)
    monkeypatch.setattr(streamed, 'FUSE_TILE', 3)
    train, known, test = problem()
    for kind in ('features', 'structure'):
        net = build(kind, train)
        expected = LinkPredictionEvaluator(N, known, compile=compile).ranks(net, test)
        for chunk, batch in CONFIGS:
            ev = StreamingLinkPredictionEvaluator(N, known, candidate_chunk=chunk,
                                                  batch_size=batch, compile=compile)
            assert_same(expected, ev.ranks(net, test))
    assert not distance_kernels._COMPILER['failed'], 'torch.compile failed here'


def test_a_scorer_with_only_forward_streams_the_in_memory_ranks():
    # a scorer that defines only forward(): its queries are not tensors to concatenate
    from native_pyg.nn.scorers import KGScorer

    class Plain(KGScorer):
        def forward(self, head, rel, tail):
            return self.margin - (head - tail).abs().sum(-1) * rel.abs().sum(-1)

    train, known, test = problem()
    net = build('features', train)
    net.scorer = Plain(net.scorer.hidden_channels, margin=6.0)
    expected = LinkPredictionEvaluator(N, known).ranks(net, test)
    assert_same(expected, StreamingLinkPredictionEvaluator(
        N, known, candidate_chunk=7, batch_size=5).ranks(net, test))
    # and they are what forward() gives, one triple at a time
    with torch.no_grad():
        emb, mask, _ = net.embed_entities(torch.arange(N))
        h, r, t = test[0].tolist()
        fused = net.fuse(emb, mask, torch.tensor(r))
        tails = net.scorer.score_tails(fused[h:h + 1], net.relation_embedding(test[:1, 1]), fused)
        one = net.scorer(fused[h], net.relation_embedding(test[0, 1]), fused[t])
    torch.testing.assert_close(tails[0, t], one)


@pytest.mark.parametrize('chunk,batch', [(13, 1), (1, 64), (1000, 2)])
def test_one_query_per_block_one_entity_per_chunk_and_one_chunk(chunk, batch):
    train, known, test = problem()
    net = build('features', train)
    expected = LinkPredictionEvaluator(N, known).ranks(net, test)
    ev = StreamingLinkPredictionEvaluator(N, known, candidate_chunk=chunk, batch_size=batch)
    assert_same(expected, ev.ranks(net, test))


def test_ties_and_nan_are_exercised():
    train, known, test = problem()
    # the copies of a target tie with it in every model but the integer one
    for kind in ('features', 'one', 'structure'):
        net = build(kind, train)
        raw = {ties: LinkPredictionEvaluator(N, known, ties=ties).ranks(net, test)[3]
               for ties in ('optimistic', 'pessimistic')}
        assert float(raw['pessimistic'][50] - raw['optimistic'][50]) == 4.0  # (0, 0, 29)
    net = build('integer', train)
    head, tail, raw_head, raw_tail = LinkPredictionEvaluator(N, known).ranks(net, test)
    assert bool((tail != tail.round()).any())  # realistic half ranks: ties
    nan_rows = (test[:, 0] == NAN_ENTITY) | (test[:, 2] == NAN_ENTITY)
    assert bool(nan_rows.any())
    ev = StreamingLinkPredictionEvaluator(N, known, candidate_chunk=6, batch_size=4)
    assert_same((head, tail, raw_head, raw_tail), ev.ranks(net, test))
    net.eval()
    with torch.no_grad():
        assert bool(torch.isnan(net.score_tails(torch.tensor([NAN_ENTITY]), torch.tensor([0]))).all())


@pytest.mark.parametrize('shift', ['ulp', 'large'])
def test_target_scores_from_their_chunk(monkeypatch, shift):
    """The ranks use the target's score in its own chunk even when the
    target pass scored it otherwise: a small shift is corrected from the kept
    near candidates, a large one streams the blocks again."""
    train, known, test = problem()
    for kind in ('integer', 'features'):
        net = build(kind, train)
        expected = LinkPredictionEvaluator(N, known, ties='pessimistic').ranks(net, test)
        ev = StreamingLinkPredictionEvaluator(N, known, ties='pessimistic', candidate_chunk=9,
                                              batch_size=16, tolerance=1e-3)
        prepare = StreamingLinkPredictionEvaluator._prepare

        def shifted(self, model, block):
            prepare(self, model, block)
            if shift == 'ulp':
                block.score = torch.nextafter(block.score, torch.full_like(block.score, 1e9))
            else:
                block.score = block.score + 1.0
            block.reset(self.tolerance, self.window_limit)

        monkeypatch.setattr(StreamingLinkPredictionEvaluator, '_prepare', shifted)
        if shift == 'ulp':
            with warnings.catch_warnings():
                warnings.simplefilter('error')
                got = ev.ranks(net, test)
            assert ev.passes == 1
        else:
            with pytest.warns(RuntimeWarning, match='streaming their blocks again'):
                got = ev.ranks(net, test)
            assert ev.passes == 2
        assert_same(expected, got)
        monkeypatch.undo()


def test_memory_is_bounded_and_entities_embedded_once(monkeypatch):
    train, known, test = problem()
    net = build('features', train)
    chunk, batch = 8, 16
    embedded, candidates = [], []

    def spy(name, original, check):
        def wrapper(*args, **kwargs):
            check(*args, **kwargs)
            return original(*args, **kwargs)
        monkeypatch.setattr(net if name in ('embed_entities', 'modality_embeddings',
                                            'score_tails', 'score_heads') else net.scorer,
                            name.split('.')[-1], wrapper)

    def embed_check(*indices):
        embedded.append([torch.as_tensor(i).reshape(-1) for i in indices])

    def modality_check(entity_index=None):
        assert entity_index is not None, 'modality embeddings of all entities'

    def refuse(*args, **kwargs):
        raise AssertionError('1-vs-all scoring over all entities')

    spy('embed_entities', net.embed_entities, embed_check)
    spy('modality_embeddings', net.modality_embeddings, modality_check)
    spy('score_tails', net.score_tails, refuse)
    spy('score_heads', net.score_heads, refuse)
    spy('scorer.against', net.scorer.against, lambda q, c, *a: candidates.append(c.size(0)))
    ev = StreamingLinkPredictionEvaluator(N, known, candidate_chunk=chunk, batch_size=batch)
    ev.ranks(net, test)
    # chunk calls (one index tensor) cover every entity once, in bounded chunks
    chunks = [c[0] for c in embedded if len(c) == 1]
    assert torch.equal(torch.cat(chunks), torch.arange(N))
    assert max(c.numel() for c in chunks) <= chunk
    # the other calls embed one block's queries and targets
    assert all(sum(i.numel() for i in c) <= 2 * batch for c in embedded if len(c) != 1)
    assert max(candidates) <= max(chunk, batch)


@pytest.mark.parametrize('encoder', ['rgcn', 'compgcn'])
def test_gnn_encoder_runs_once_layer_wise_with_the_in_memory_ranks(encoder, monkeypatch):
    train, known, test = problem()
    g = torch.Generator().manual_seed(4)
    feats = {'m0': torch.randn(N, 6, generator=g)}
    net = NativE(N, R, 4, feats, edge_index=train[:, [0, 2]].t(), edge_type=train[:, 1],
                 encoder=encoder, seed=3)
    expected = LinkPredictionEvaluator(N, known).ranks(net, test)
    calls = {'forward': 0, 'layer': 0}
    layer_forward = net.structural_encoder.layer_forward

    def count_layer(*args, **kwargs):
        calls['layer'] += 1
        return layer_forward(*args, **kwargs)

    net.structural_encoder.register_forward_pre_hook(
        lambda *_: calls.__setitem__('forward', calls['forward'] + 1))
    monkeypatch.setattr(net.structural_encoder, 'layer_forward', count_layer)
    ev = StreamingLinkPredictionEvaluator(N, known, candidate_chunk=16, batch_size=8)
    got = ev.ranks(net, test)
    # never the full-graph pass; each layer once over ceil(N / 16) target batches
    assert calls == {'forward': 0, 'layer': net.structural_encoder.num_layers * 3}
    assert_same(expected, got)
    # the model is usable as before afterwards (no cached structure left behind)
    with torch.no_grad():
        net.entity_emb.weight.mul_(2.0)
    assert not torch.equal(LinkPredictionEvaluator(N, known).ranks(net, test)[0], expected[0])


def test_evaluations_inside_encoded_once_share_one_run_of_the_encoder(monkeypatch):
    """What training's final valid and test evaluations enter: the structural
    encoder runs once for both; the full protocol has nothing to share."""
    train, known, test = problem()
    g = torch.Generator().manual_seed(4)
    net = NativE(N, R, 4, {'m0': torch.randn(N, 6, generator=g)},
                 edge_index=train[:, [0, 2]].t(), edge_type=train[:, 1], encoder='rgcn', seed=3)
    layers = []
    layer_forward = net.structural_encoder.layer_forward
    monkeypatch.setattr(net.structural_encoder, 'layer_forward',
                        lambda *a, **k: layers.append(1) or layer_forward(*a, **k))
    ev = StreamingLinkPredictionEvaluator(N, known, candidate_chunk=16, batch_size=8)
    expected = ev.ranks(net, test)
    once = len(layers)
    assert once == net.structural_encoder.num_layers * 3
    with ev.encoded_once(net):
        first, second = ev.ranks(net, test[:20]), ev.ranks(net, test[20:])
    assert len(layers) == 2 * once
    assert_same(expected, [torch.cat(pair) for pair in zip(first, second)])
    with LinkPredictionEvaluator(N, known).encoded_once(net):
        pass
    assert len(layers) == 2 * once


def test_added_entities_are_not_candidates():
    train, known, test = problem()
    net = build('one', train)
    net.add_entities({'m0': torch.randn(3, 5)})
    assert net.num_entities == N + 3
    expected = LinkPredictionEvaluator(N, known).ranks(net, test)
    assert_same(expected, StreamingLinkPredictionEvaluator(N, known, candidate_chunk=16)
                .ranks(net, test))
    with pytest.raises(ValueError, match='entities'):
        StreamingLinkPredictionEvaluator(N + 9, known).ranks(net, test)


def test_streamed_evaluate_from_data_matches_and_restores_training():
    from native_pyg.data.schema import build_mmkg
    train, known, test = problem()
    g = torch.Generator().manual_seed(4)
    mask = torch.rand(N, generator=g) > 0.4
    data = build_mmkg(N, R, train, known[100:120], test[:50],
                      features={'image': torch.randn(N, 6, generator=g)},
                      masks={'image': mask})
    net = NativE.from_data(data, 4, seed=5)
    net.train()
    expected = LinkPredictionEvaluator.from_data(data).evaluate(net, test[:50])
    ev = StreamingLinkPredictionEvaluator.from_data(data, candidate_chunk=11, progress=True)
    got = ev.evaluate(net, test[:50])
    assert net.training
    assert got.pop('protocol') == 'streamed'
    assert got == expected
    assert 'StreamingLinkPredictionEvaluator' in repr(ev) and 'candidate_chunk=11' in repr(ev)
    with pytest.raises(ValueError, match='candidate_chunk'):
        StreamingLinkPredictionEvaluator(N, known, candidate_chunk=0)
    with pytest.raises(TypeError, match='NativE API'):
        StreamingLinkPredictionEvaluator(N, known).ranks(torch.nn.Linear(2, 2), test)


@needs_shared
def test_streamed_equals_in_memory_on_mkg_y(tmp_path):
    from native_pyg.data import split_triples
    from native_pyg.data.schema import split_edges
    from native_pyg.datasets import WildKGC

    fill_wildkgc_root(tmp_path, 'MKG-Y')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # no feature files: structure only
        data = WildKGC(str(tmp_path), 'MKG-Y', log=False)[0]
    test = split_triples(data, 'test')
    n = data['entity'].num_nodes
    edge_index, edge_type = split_edges(data, 'train')
    # a freshly initialised (seeded) structure-only model: every float path is exact
    net = NativE(n, data.num_relations, 4, edge_index=edge_index, edge_type=edge_type, seed=0)
    reference = LinkPredictionEvaluator.from_data(data)
    expected = reference.ranks(net, test)
    ev = StreamingLinkPredictionEvaluator.from_data(data, candidate_chunk=4096, batch_size=512)
    ranks = ev.ranks(net, test)
    assert ev.passes == 1
    assert_same(expected, ranks)
    assert ev.metrics_from_ranks(test, *ranks) == reference.metrics_from_ranks(test, *expected)
    # with a random feature modality (30% missing) on a sample of the test triples:
    # its projection is computed over chunks instead of all entities at once, and
    # a batch-dependent matrix kernel may move a near tie (never seen here)
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(n, generator=g) > 0.3
    net = NativE(n, data.num_relations, 4, {'image': torch.randn(n, 8, generator=g)},
                 {'image': mask}, edge_index=edge_index, edge_type=edge_type, seed=0)
    subset = sample_queries(test, 800, seed=0)
    expected = reference.ranks(net, subset)
    got = ev.ranks(net, subset)
    differ = sum(int((a != b).sum()) for a, b in zip(expected, got))
    assert differ <= 4, f'{differ} of {4 * subset.size(0)} ranks differ'


def test_raw_rows_projected_a_block_at_a_time_without_gradient(monkeypatch):
    # a chunk of 4096-d rows would be 1 GB as float32: evaluation reads and projects
    # them a block at a time (nn.projections.PROJECT_BYTES), training's step all at once
    from native_pyg.nn import projections
    train, known, test = problem()
    net = build('features', train)
    with torch.no_grad():
        whole = net.modality_embeddings(None)
    expected = LinkPredictionEvaluator(N, known).ranks(net, test)
    monkeypatch.setattr(projections, 'PROJECT_BYTES', 4 * 7 * 3)  # 3 rows of the 7-d modality
    read = []
    real = net.inputs.rows
    monkeypatch.setattr(net.inputs, 'rows', lambda m, index: read.append(
        None if index is None else index.numel()) or real(m, index))
    with torch.no_grad():
        blocked = net.modality_embeddings(None)
    assert read and max(read) <= 4  # 3 rows of m1, 4 of the 5-d m0
    torch.testing.assert_close(blocked, whole, rtol=1e-6, atol=1e-6)
    assert_same(expected, StreamingLinkPredictionEvaluator(
        N, known, candidate_chunk=16, batch_size=5).ranks(net, test))
    read.clear()
    emb, _ = net.modality_embeddings(torch.arange(N))  # with gradient: one read per modality
    assert emb.requires_grad and len(read) == 2 and max(read) > 4
