"""Entities the training graph never saw: structure as a maskable modality,
structure dropout, seen/unseen metrics and entities added after training."""
import pytest
import torch

from native_pyg.data import report, seen_entities, split_triples
from native_pyg.datasets import SyntheticMMKG
from native_pyg.evaluation import LinkPredictionEvaluator, format_metrics
from native_pyg.nn import NativE
from native_pyg.pipeline import build_model
from native_pyg.training import (RunConfig, StructureDropout, Trainer, fit_structure_stand_in,
                                 load_checkpoint, save_checkpoint)
from native_pyg.config.legacy import with_legacy_defaults


@pytest.fixture(scope='module')
def data():
    return SyntheticMMKG(seed=3, num_entities=400, num_relations=4)[0]


def model(data, **kw):
    return NativE.from_data(data, 8, margin=6.0, **kw)


def unseen_with_features(data, m):
    seen = seen_entities(data)
    has = torch.stack([m.feature(x)[1] for x in m.feature_modalities], 1).any(1)
    ids = (~seen & has).nonzero().view(-1)
    assert ids.numel() > 0, 'the synthetic data has unseen entities with features'
    return ids


def test_an_unseen_entity_is_placed_by_its_features_alone(data):
    m = model(data)
    assert torch.equal(m.inputs.has_structure(), seen_entities(data))
    ids = unseen_with_features(data, m)
    rel = torch.zeros(ids.numel(), dtype=torch.long)
    weights = m.modality_weights(ids, rel)
    assert torch.all(weights[:, 0] == 0) and torch.allclose(weights.sum(1), torch.ones(len(ids)))
    before = m.joint_embeddings(ids, rel)
    with torch.no_grad():
        m.entity_emb.weight[ids] = torch.randn(ids.numel(), m.entity_dim) * 100
    assert torch.equal(m.joint_embeddings(ids, rel), before)
    # the paper's behaviour: structure always takes part
    legacy = model(data, structure_mask=False)
    assert torch.all(legacy.modality_weights(ids, rel)[:, 0] > 0)


def test_an_entity_with_nothing_falls_back_to_its_structure(data):
    m = model(data)
    e = int(unseen_with_features(data, m)[0])
    masks = {x: m.feature(x)[1].clone() for x in m.feature_modalities}
    for k in masks.values():
        k[e] = False
    m.inputs.set_features({x: m.feature(x)[0] for x in m.feature_modalities}, masks)
    w = m.modality_weights(torch.tensor([e]), torch.tensor([0]))
    assert w.tolist() == [[1.0] + [0.0] * len(m.feature_modalities)]


def test_structure_dropout_hides_what_it_says(data):
    drop = StructureDropout(0.3, data['entity'].num_nodes, seed=0)
    hidden = drop.sample()
    assert 0.2 < hidden.float().mean() < 0.4
    state = drop.state_dict()
    again = drop.sample()
    drop.load_state_dict(state)
    assert torch.equal(drop.sample(), again) and not torch.equal(again, hidden)
    m = model(data)
    seen = seen_entities(data)
    has = torch.stack([m.feature(x)[1] for x in m.feature_modalities], 1).any(1)
    everyone = torch.arange(data['entity'].num_nodes)
    rel = torch.zeros_like(everyone)
    with m.hidden_structure(hidden):
        w = m.modality_weights(everyone, rel)[:, 0]
    assert torch.all(w[hidden & has] == 0)  # hidden, and features to stand in
    assert torch.all(w[hidden & ~has] == 1)  # nothing else: structure stays
    assert torch.all(w[~hidden & seen] > 0)
    assert torch.all(m.modality_weights(everyone, rel)[:, 0][seen] > 0)  # context left
    with pytest.raises(ValueError, match='structure_dropout'):
        StructureDropout(1.0, 10)


def test_structure_dropout_trains_and_needs_a_maskable_structure(data):
    run = RunConfig().override(['model.hidden_channels=8', 'training.batch_size=2048',
                                'training.num_negatives=4', 'training.progress=false',
                                'training.structure_dropout=0.5', 'training.eval_every=0'])
    trainer = Trainer(build_model(data, run), data, run)
    assert trainer.train_epoch()['loss'] > 0
    bare = run.override(['model.modalities=[]'])
    with pytest.raises(ValueError, match='structure_dropout needs'):
        Trainer(build_model(data, bare), data, bare)


def test_seen_and_unseen_counts_match_the_data_report(data):
    ev = LinkPredictionEvaluator.from_data(data)
    test = split_triples(data, 'test')
    out = ev.evaluate(model(data), test)
    groups = out['per_group']
    assert groups['unseen']['count'] == report(data).unseen_entity_rows['test'] > 0
    assert groups['seen']['count'] + groups['unseen']['count'] == test.size(0)
    # the whole split's MRR is the count-weighted mean of the groups'
    both = sum(g['both']['mrr'] * g['count'] for g in groups.values()) / test.size(0)
    assert out['both']['mrr'] == pytest.approx(both)
    table = format_metrics(out)
    assert 'entities' in table and f"{'unseen':<9}{groups['unseen']['count']:>7}" in table


def test_added_entities_are_ranked_and_change_no_existing_score(data):
    m = model(data)
    q, r = torch.tensor([0, 5, 9]), torch.tensor([0, 1, 2])
    tails, heads = m.score_tails(q, r), m.score_heads(r, q)
    x = {mod: m.feature(mod)[0][:2].clone() * 1.5 for mod in m.feature_modalities[:1]}
    ids = m.add_entities(x, names=['new a', 'new b'])
    n = data['entity'].num_nodes
    assert ids.tolist() == [n, n + 1] and m.num_entities == n + 2
    assert torch.equal(m.score_tails(q, r)[:, :n], tails)
    assert torch.equal(m.score_heads(r, q)[:, :n], heads)
    # a new entity as the query, and among the candidates
    assert m.score_tails(ids, torch.tensor([0, 0])).shape == (2, n + 2)
    w = m.modality_weights(ids, torch.tensor([0, 0]))
    assert torch.all(w[:, 0] == 0)
    # evaluation on the dataset still ranks against its own entities
    ev = LinkPredictionEvaluator.from_data(data)
    assert ev.evaluate(m, split_triples(data, 'test'))['num_triples'] > 0
    with pytest.raises(ValueError, match='no present feature'):
        m.add_entities({m.feature_modalities[0]: torch.zeros(1, x[m.feature_modalities[0]].size(1))})
    with pytest.raises(ValueError, match="feature modalities are"):
        m.add_entities({'audio': torch.ones(1, 3)})
    with pytest.raises(ValueError, match='structure-only'):
        model(data, modalities=[]).add_entities({'image': torch.ones(1, 3)})


def test_added_entities_survive_a_checkpoint(data, tmp_path):
    m = model(data)
    mod = m.feature_modalities[0]
    ids = m.add_entities({mod: torch.randn(3, m.feature(mod)[0].size(1))}, names=['a', 'b', 'c'])
    save_checkpoint({'model': m.state_dict()}, str(tmp_path / 'm.pt'))
    fresh = model(data)
    fresh.load_state_dict(load_checkpoint(str(tmp_path / 'm.pt'))['model'])
    assert fresh.num_entities == m.num_entities and fresh.added_entity_names == ['a', 'b', 'c']
    rel = torch.zeros(3, dtype=torch.long)
    assert torch.equal(fresh.score_tails(ids, rel), m.score_tails(ids, rel))


def test_checkpoints_from_before_structure_masking_keep_their_behaviour():
    old = RunConfig().to_dict()
    del old['model']['structure_mask'], old['training']['structure_dropout']
    run = RunConfig.from_dict(with_legacy_defaults(old))
    assert run.model.structure_mask is False and RunConfig().model.structure_mask is True


def test_a_fitted_stand_in_places_unseen_entities_and_leaves_the_model_alone(data):
    m = model(data, structure_stand_in=True)
    ids = unseen_with_features(data, m)
    seen = seen_entities(data).nonzero().view(-1)
    rel = torch.zeros(ids.numel(), dtype=torch.long)
    assert torch.all(m.modality_weights(ids, rel)[:, 0] == 0)  # unfitted: masked
    seen_before = m.joint_embeddings(seen, torch.zeros_like(seen))
    params = {k: v.clone() for k, v in m.named_parameters() if not k.startswith('stand_in.')}
    generator = [p.clone() for p in m.stand_in.parameters()]
    losses = fit_structure_stand_in(m, split_triples(data, 'train'), epochs=2, batch_size=512,
                                    num_negatives=4)
    assert len(losses) == 2 and all(x > 0 for x in losses) and bool(m.stand_in.fitted)
    assert all(torch.equal(v, dict(m.named_parameters())[k]) for k, v in params.items())
    assert not all(torch.equal(a, b) for a, b in zip(generator, m.stand_in.parameters()))
    # seen entities keep their embeddings; unseen ones get the generated structure, present
    assert torch.equal(m.joint_embeddings(seen, torch.zeros_like(seen)), seen_before)
    assert torch.all(m.modality_weights(ids, rel)[:, 0] > 0)
    emb, mask = m.modality_embeddings(ids)
    assert torch.all(mask[:, 0])
    assert torch.allclose(emb[:, 0], m.stand_in(emb[:, 1:], mask[:, 1:]))
    before = m.joint_embeddings(ids, rel)
    with torch.no_grad():
        m.entity_emb.weight[ids] = torch.randn(ids.numel(), m.entity_dim) * 100
    assert torch.equal(m.joint_embeddings(ids, rel), before)
    # entities added after training are placed the same way
    mod = m.feature_modalities[0]
    new = m.add_entities({mod: m.feature(mod)[0][ids[:2]]})
    assert torch.all(m.modality_weights(new, torch.zeros(2, dtype=torch.long))[:, 0] > 0)


@pytest.mark.parametrize('error', [RuntimeError, KeyboardInterrupt])
def test_a_failed_stand_in_fit_leaves_the_stand_in_and_the_models_mode_as_they_were(
        data, monkeypatch, error):
    from native_pyg.training import stand_in_fitting
    m = model(data, structure_stand_in=True).train()
    triples = split_triples(data, 'train')
    fit_structure_stand_in(m, triples, epochs=1, batch_size=512, num_negatives=2)
    before = {k: v.clone() for k, v in m.stand_in.state_dict().items()}
    calls, loss = [], stand_in_fitting.self_adversarial_loss

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:  # after two optimiser steps
            raise error('stopped')
        return loss(*args)

    monkeypatch.setattr(stand_in_fitting, 'self_adversarial_loss', failing)
    with pytest.raises(error, match='stopped'):
        fit_structure_stand_in(m, triples, epochs=2, batch_size=128, num_negatives=2)
    assert m.training and len(calls) == 3
    after = m.stand_in.state_dict()
    assert bool(m.stand_in.fitted) and all(torch.equal(v, after[k]) for k, v in before.items())


def test_the_stand_in_fits_to_the_structure_a_training_step_encodes(data, monkeypatch):
    """With a GNN encoder each fitting step encodes the training graph minus
    the step's triples (both directions), as a whole-graph training step does;
    e_s and the partners come from that encoding, not the whole graph's."""
    import native_pyg.training.stand_in_fitting as fitting
    m = model(data, structure_stand_in=True, encoder='rgcn',
              encoder_kwargs={'num_layers': 1, 'num_bases': 2})
    triples = split_triples(data, 'train')
    edges, steps = [], []
    m.structural_encoder.register_forward_hook(lambda mod, args, out: edges.append(args[1:3]))
    terms = fitting.stand_in_terms

    def spy(model_, emb, mask, h, r, t, neg_index, side):
        steps.append((emb.detach().clone(), h, t))
        return terms(model_, emb, mask, h, r, t, neg_index, side)

    monkeypatch.setattr(fitting, 'stand_in_terms', spy)
    batch_size, seed = 700, 5
    fit_structure_stand_in(m, triples, epochs=1, batch_size=batch_size, num_negatives=3,
                           seed=seed)
    # the first draw of the fit is the epoch's order
    batches = torch.randperm(triples.size(0), generator=torch.Generator().manual_seed(seed))
    batches = batches.split(batch_size)
    assert len(batches) > 1 and len(edges) == len(steps) == len(batches)
    (src, dst), rel, num_relations = triples[:, [0, 2]].t(), triples[:, 1], data.num_relations
    whole = (torch.cat([src, dst]), torch.cat([rel, rel + num_relations]), torch.cat([dst, src]))
    key = lambda h, r, t: (h * 2 * num_relations + r) * m.num_entities + t  # noqa: E731
    m.eval()
    with torch.no_grad():
        full = m.structural_encoder(m.entity_emb.weight, torch.stack([whole[0], whole[2]]),
                                    whole[1])
    for batch, (edge_index, edge_type), (emb, h_row, t_row) in zip(batches, edges, steps):
        h, r, t = triples[batch].unbind(1)
        fitted = torch.cat([key(h, r, t), key(t, r + num_relations, h)])
        keep = ~torch.isin(key(*whole), fitted)  # both directions of the step's triples gone
        assert torch.equal(torch.sort(key(edge_index[0], edge_type, edge_index[1]))[0],
                           torch.sort(key(*whole)[keep])[0])
        with torch.no_grad():
            expected = m.structural_encoder(m.entity_emb.weight,
                                            torch.stack([whole[0][keep], whole[2][keep]]),
                                            whole[1][keep])
        assert torch.allclose(emb[h_row, 0], expected[h], atol=1e-6)
        assert torch.allclose(emb[t_row, 0], expected[t], atol=1e-6)
        assert not torch.allclose(emb[h_row, 0], full[h], atol=1e-4)  # not the whole graph's
    # the table encodes nothing: its embeddings are computed once, not per step
    table = model(data, structure_stand_in=True)
    calls = []
    embed = table.modality_embeddings
    monkeypatch.setattr(table, 'modality_embeddings', lambda *a: (calls.append(a), embed(*a))[1])
    fit_structure_stand_in(table, triples, epochs=2, batch_size=batch_size, num_negatives=3)
    assert calls == [(None,)]


def test_the_stand_in_survives_a_checkpoint_and_needs_a_maskable_structure(data, tmp_path):
    m = model(data, structure_stand_in=True)
    fit_structure_stand_in(m, split_triples(data, 'train'), epochs=1, num_negatives=2)
    save_checkpoint({'model': m.state_dict()}, str(tmp_path / 'm.pt'))
    fresh = model(data, structure_stand_in=True)
    assert not bool(fresh.stand_in.fitted)
    fresh.load_state_dict(load_checkpoint(str(tmp_path / 'm.pt'))['model'])
    ids = unseen_with_features(data, m)
    rel = torch.zeros(ids.numel(), dtype=torch.long)
    assert bool(fresh.stand_in.fitted)
    assert torch.equal(fresh.score_tails(ids, rel), m.score_tails(ids, rel))
    with pytest.raises(ValueError, match='structure_stand_in needs'):
        model(data, structure_stand_in=True, structure_mask=False)
    with pytest.raises(ValueError, match='no structure stand-in'):
        fit_structure_stand_in(model(data), split_triples(data, 'train'))


def test_the_trainer_fits_the_stand_in_after_training_and_trains_without_it(data):
    run = RunConfig().override(['model.hidden_channels=8', 'training.batch_size=2048',
                                'training.num_negatives=4', 'training.progress=false',
                                'training.epochs=1', 'training.eval_every=0',
                                'training.adversarial=false', 'model.structure_stand_in=true',
                                'training.stand_in_epochs=1'])
    trainer = Trainer(build_model(data, run), data, run)
    trainer.fit()
    assert bool(trainer.model.stand_in.fitted)
    fitted_while_training = []
    epoch = trainer.train_epoch
    trainer.train_epoch = lambda: (fitted_while_training.append(
        bool(trainer.model.stand_in.fitted)), epoch())[1]
    trainer.fit(2)  # a continued run trains with the stand-in unused, then refits it
    assert fitted_while_training == [False] and len(trainer.history) == 2
    assert bool(trainer.model.stand_in.fitted)
    with pytest.raises(ValueError, match='stand_in_epochs must be at least 1'):
        never = run.override(['training.stand_in_epochs=0'])
        Trainer(build_model(data, never), data, never)
    old = RunConfig().to_dict()
    del old['model']['structure_stand_in'], old['training']['stand_in_epochs']
    legacy = RunConfig.from_dict(with_legacy_defaults(old))
    assert legacy.model.structure_stand_in is False and legacy.training.stand_in_epochs == 10
