"""The CLI with a structural GNN encoder: train, evaluate and predict."""
import pytest


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
