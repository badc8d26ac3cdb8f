"""native_pyg.predict and labelled modality weights (issue 39)."""
import pytest
import torch

import native_pyg
from native_pyg.data import split_triples
from native_pyg.pipeline import load_run
from tests.helpers.runs import tiny_pipeline_run


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp('run')
    return tiny_pipeline_run(out, seed=3, num_entities=120), out


def test_predict_tails_by_name_with_scores_and_known_flags(run):
    result, _ = run
    data, model = result.data, result.model
    h, r, t = split_triples(data, 'train')[0].tolist()
    names, rels = list(data['entity'].name), list(data.relation_names)
    table = native_pyg.predict(result, head=names[h], relation=rels[r], k=120)
    assert table.query == (names[h], rels[r], '?') and len(table) == 120
    with torch.no_grad():
        want = model.score_tails(torch.tensor([h]), torch.tensor([r]))[0]
    top = want.topk(5)
    assert [p.id for p in table.rows[:5]] == top.indices.tolist()
    assert [p.score for p in table.rows[:5]] == pytest.approx(top.values.tolist(), rel=1e-5)
    assert [p.rank for p in table.rows] == list(range(1, 121))
    assert next(p for p in table if p.id == t).known == 'train'
    known = {(a, c) for a, b, c in split_triples(data, 'train').tolist() if b == r}
    assert all((p.known == 'train') == ((h, p.id) in known) or p.known in ('valid', 'test')
               for p in table)
    fresh = native_pyg.predict(result, head=h, relation=r, k=5, exclude_known=True)
    assert len(fresh) == 5 and all(p.known is None for p in fresh)
    assert fresh.new() == fresh.rows
    assert str(table).splitlines()[0] == f"top 120 tails for ({names[h]}, {rels[r]}, ?)"


def test_predict_heads_from_a_checkpoint_path_and_errors(run):
    result, out = run
    data = result.data
    h, r, t = split_triples(data, 'train')[0].tolist()
    table = native_pyg.predict(str(out / 'model.pt'), tail=t, relation=r, k=3, data=data)
    assert table.query[0] == '?' and len(table) == 3
    direct = native_pyg.predict(load_run(str(out / 'model.pt'), data=data), tail=t,
                                relation=r, k=3)
    assert [p.id for p in direct] == [p.id for p in table]
    for kwargs, words in ((dict(head=0, tail=1, relation=0), 'exactly one of'),
                          (dict(head=0, relation='--1'), "unknown relation '--1'"),
                          (dict(head=0, relation='\u00b2'), "unknown relation '\u00b2'"),
                          (dict(head=0, relation=7), 'relation id 7 is outside [0, 3)'),
                          (dict(head='x' * 2_000_000, relation=0), "...'"),
                          (dict(head=0, relation=0, k=0), 'k must be a positive')):
        with pytest.raises(ValueError) as e:
            native_pyg.predict(result, **kwargs)
        assert words in str(e.value) and len(str(e.value)) < 400, str(e.value)[:200]
    with pytest.raises(ValueError, match='needs the graph'):
        native_pyg.predict(result.model, head=0, relation=0)


def test_modality_weights_are_labelled(run):
    result, _ = run
    w = native_pyg.modality_weights(result, [0, 1, 2], relation=0)
    assert list(w) == result.model.modality_names
    total = sum(w.values())
    assert torch.allclose(total, torch.ones(3), atol=1e-5)
