"""A graph generate_large_mmkg wrote, walked from the command line: train
with a step budget and sampled validation, evaluate streamed, complete
(issue 40)."""
import json

import pytest

from native_pyg.cli import main
from native_pyg.datasets import generate_large_mmkg


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp('large') / 'g'
    return generate_large_mmkg(str(root), 3000, num_relations=20, image_dim=16, text_dim=8,
                               valid_triples=300, test_triples=200, progress=False)


def test_train_evaluate_and_complete_on_a_generated_graph(graph, tmp_path, capsys):
    assert main(['stats', '--dataset', str(graph)]) == 0
    printed = capsys.readouterr().out
    assert 'no feature modality' in printed and '  image ' in printed and '  text ' in printed
    out = tmp_path / 'run'
    assert main(['train', '--dataset', str(graph), '--out', str(out), '--quiet', '--threads',
                 '1', '--epochs', '2', '--set', 'model.hidden_channels=8',
                 '--set', 'training.num_negatives=4', '--set', 'training.batch_size=256',
                 '--set', 'training.steps_per_epoch=3', '--set', 'training.eval_every=1',
                 '--set', 'training.eval_sample=100']) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith('training NativE on g: modalities image, text')
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['valid']['protocol'] == 'streamed' and metrics['valid']['sampled_queries'] == 100
    assert metrics['test']['protocol'] == 'streamed' and 'sampled_queries' not in metrics['test']
    assert metrics['epochs'] == 2
    history = [json.loads(l) for l in (out / 'history.jsonl').read_text().splitlines()]
    assert all(r['triples_per_s'] > 0 for r in history) and len(history) == 2
    assert main(['evaluate', '--checkpoint', str(out / 'model.pt'), '--eval-sample', '50',
                 '--threads', '1']) == 0
    assert 'streamed' in capsys.readouterr().out
    heads = tmp_path / 'heads.txt'
    heads.write_text('entity_0\nentity_1\n')
    assert main(['complete', '--checkpoint', str(out / 'model.pt'), '--relation', '3',
                 '--heads', str(heads), '--k', '5', '--out', str(tmp_path / 'c.tsv'),
                 '--quiet']) == 0
    rows = (tmp_path / 'c.tsv').read_text().splitlines()
    assert len(rows) == 1 + 2 * 5 and rows[0].startswith('head\trelation\ttail\tscore\trank')
    assert main(['train', '--dataset', str(graph), '--dedupe', '--out', str(tmp_path / 'x')]) == 2
    assert 'not a generated large graph' in capsys.readouterr().err
