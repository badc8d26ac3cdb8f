"""native-pyg complete / native_pyg.completion: proposals never known,
equal to a brute-force top-k, resumable after a kill (issue 40, part 5)."""
import pytest
import torch

import native_pyg.completion as completion
from native_pyg.cli import main
from native_pyg.data import split_triples
from native_pyg.datasets import SyntheticMMKG
from tests.helpers.runs import tiny_pipeline_run


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return tiny_pipeline_run(tmp_path_factory.mktemp('run'), seed=4, num_entities=90)


def read(path):
    lines = path.read_text().splitlines()
    return lines[0].split('\t'), [l.split('\t') for l in lines[1:]]


def test_proposals_are_new_and_equal_a_brute_force_top_k(run, tmp_path):
    data, model = run.data, run.model
    names, rels = list(data['entity'].name), list(data.relation_names)
    out = tmp_path / 'c.tsv'
    completion.complete(run, [rels[1], 2], str(out), k=4, progress=False, batch_size=7)
    header, rows = read(out)
    assert header == ['head', 'relation', 'tail', 'score', 'rank',
                      *(f'w_{m}' for m in model.modality_names)]
    known = {tuple(t) for s in ('train', 'valid', 'test') for t in split_triples(data, s).tolist()}
    index = {n: i for i, n in enumerate(names)}
    got = {}
    for h, r, t, score, rank, *w in rows:
        triple = (index[h], rels.index(r), index[t])
        assert triple not in known  # never a known fact
        assert sum(map(float, w)) == pytest.approx(1, abs=1e-3)  # ReDAF's weights
        got.setdefault((triple[0], triple[1]), []).append((int(rank), triple[2], float(score)))
    assert len(got) == 2 * len(names)
    with torch.no_grad():
        for (h, r), props in got.items():
            scores = model.score_tails(torch.tensor([h]), torch.tensor([r]))[0]
            for t in [t for (hh, rr, t) in known if hh == h and rr == r]:
                scores[t] = float('-inf')
            want = scores.topk(4)
            assert [t for _, t, _ in sorted(props)] == want.indices.tolist()
            assert [s for *_, s in sorted(props)] == pytest.approx(want.values.tolist(),
                                                                   rel=1e-4)


def test_a_killed_run_continues_to_the_same_table(run, tmp_path, monkeypatch):
    rels = list(run.data.relation_names)
    whole = tmp_path / 'whole.tsv'
    completion.complete(run, rels, str(whole), k=3, progress=False, batch_size=10)
    real, calls = completion._proposals, []

    def dies_on_the_fifth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(completion, '_proposals', dies_on_the_fifth)
    part = tmp_path / 'part.tsv'
    with pytest.raises(KeyboardInterrupt):
        completion.complete(run, rels, str(part), k=3, progress=False, batch_size=10)
    assert (tmp_path / 'part.tsv.progress.json').exists()
    with open(part, 'a') as f:  # rows of a batch cut short by the kill
        f.write('half a row\t')
    monkeypatch.setattr(completion, '_proposals', real)
    completion.complete(run, rels, str(part), k=3, progress=False, batch_size=10)
    assert part.read_bytes() == whole.read_bytes()
    assert not (tmp_path / 'part.tsv.progress.json').exists()
    with pytest.raises(ValueError, match='exists; choose a new path'):  # never overwritten
        completion.complete(run, rels, str(part), k=3, progress=False)


def test_the_cli_writes_the_table_and_refuses_in_one_line(tmp_path, capsys):
    fast = ['--set', 'model.hidden_channels=8', '--set', 'training.num_negatives=4',
            '--set', 'training.eval_every=0', '--epochs', '1', '--quiet']
    assert main(['train', '--dataset', 'synthetic', '--out', str(tmp_path / 'r'), *fast]) == 0
    ckpt = str(tmp_path / 'r' / 'model.pt')
    heads = tmp_path / 'heads.txt'
    heads.write_text('entity_0\n7\n')
    out = tmp_path / 'c.tsv'
    capsys.readouterr()
    assert main(['complete', '--checkpoint', ckpt, '--relation', 'relation_1', '--relation',
                 '2', '--heads', str(heads), '--k', '3', '--out', str(out), '--quiet']) == 0
    _, rows = read(out)
    assert len(rows) == 2 * 2 * 3 and {r[0] for r in rows} == {'entity_0', 'entity_7'}
    assert {r[1] for r in rows} == {'relation_1', 'relation_2'}
    before = out.read_bytes()
    for argv, words in (
            (['--relation', 'relation_1', '--out', str(out)], 'exists; choose a new path'),
            (['--relation', 'nope', '--out', str(tmp_path / 'x.tsv')], "unknown relation 'nope'"),
            (['--relation', '0', '--k', '0', '--out', str(tmp_path / 'y.tsv')],
             '--k 0: expected a positive number'),
            (['--relation', '0', '--out', str(tmp_path / 'no' / 'z.tsv')], 'does not exist')):
        assert main(['complete', '--checkpoint', ckpt, *argv, '--quiet']) == 2
        err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
        assert len(err) == 1 and words in err[0], err
    assert out.read_bytes() == before


def test_a_gnn_model_completes_like_its_brute_force_top_k(tmp_path):
    from native_pyg.nn import NativE
    data = SyntheticMMKG(seed=5, num_entities=80, num_relations=3)[0]
    model = NativE.from_data(data, hidden_channels=8, encoder='rgcn').eval()
    known = completion.KnownTails(data)
    heads = torch.tensor([0, 3, 9])
    values, tails = completion.top_new_tails(model, known, heads, 1, 4, 80, 'cpu', chunk=17)
    with torch.no_grad():
        scores = model.score_tails(heads, torch.tensor([1]))
    rows, cols = known.pairs(heads, 1)
    scores[rows, cols] = float('-inf')
    want = scores.topk(4, dim=1)
    assert torch.equal(tails, want.indices)
    assert torch.allclose(values, want.values, rtol=1e-5)
    out = tmp_path / 'gnn.tsv'
    completion.complete(model, [1], str(out), heads=[0, 3, 9], k=4, data=data, progress=False)
    names = list(data['entity'].name)
    _, rows_written = read(out)
    assert [names.index(r[2]) for r in rows_written] == want.indices.reshape(-1).tolist()
