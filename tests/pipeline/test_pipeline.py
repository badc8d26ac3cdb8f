"""pipeline(), build_model() and load_run(): one way to build and restore a run."""
import json

import pytest
import torch

from native_pyg.data.schema import modalities as data_modalities
from native_pyg.datasets import SyntheticMMKG
from native_pyg.pipeline import (LoadedRun, PipelineResult, build_model, keyword_overrides,
                                 load_run, pipeline)
from native_pyg.training import RunConfig

TINY = dict(hidden_channels=8, epochs=2, eval_every=1, batch_size=512, num_negatives=4,
            progress=False)


@pytest.fixture(scope='module')
def graph():
    return SyntheticMMKG(seed=2, num_entities=200, num_relations=4)[0]


@pytest.fixture(scope='module')
def done(graph, tmp_path_factory):
    out = tmp_path_factory.mktemp('run')
    return out, pipeline(data=graph, out=str(out), **TINY)


def test_keywords_are_config_keys_of_one_section():
    assert keyword_overrides({'epochs': 40, 'lr': 1e-2, 'modalities': ['image'],
                              'num_neighbors': None, 'text_features': 'names'}) == [
        'training.epochs=40', 'training.lr=0.01', 'model.modalities=["image"]',
        'training.num_neighbors=null', 'data.text_features="names"']
    with pytest.raises(ValueError, match="unknown keyword 'epoch'"):
        keyword_overrides({'epoch': 3})


def test_pipeline_trains_evaluates_and_writes_a_run(done, graph):
    out, result = done
    assert isinstance(result, PipelineResult) and result.data is graph
    assert result.run.training.epochs == 2 and result.run.model.hidden_channels == 8
    assert result.run.model.modalities == data_modalities(graph)  # recorded, not "all"
    assert len(result.history) == 2 and result.trainer.epoch == 2
    for split in ('valid', 'test'):
        assert 0 < result.metrics[split]['both']['mrr'] <= 1
    written = json.loads((out / 'metrics.json').read_text())
    assert written['test']['both']['mrr'] == result.test['both']['mrr']
    assert written['best_epoch'] == result.trainer.best_epoch
    for f in ('model.pt', 'last.pt', 'history.jsonl'):
        assert (out / f).exists(), f
    assert 'test_mrr=' in repr(result)
    with pytest.raises(ValueError, match='already holds a run'):  # never replaced by accident
        pipeline(data=graph, out=str(out), **TINY)


def test_pipeline_equals_its_parts(graph):
    run = RunConfig().override([f'{s}.{k}={json.dumps(v)}' for k, v in TINY.items()
                                for s in ('model' if k == 'hidden_channels' else 'training',)])
    assert build_model(graph, run).state_dict().keys() == \
        pipeline(data=graph, config=run, evaluate=False).model.state_dict().keys()
    result = pipeline(data=graph, config=run.to_dict(), overrides=['training.epochs=1'],
                      evaluate=False, modalities=[])
    assert result.metrics is None and result.test is None
    assert result.trainer.epoch == 1 and result.model.feature_modalities == []


def test_load_run_gives_the_same_test_metrics(done, graph):
    out, result = done
    # the config names the default synthetic data, not the graph given to pipeline()
    with pytest.raises(ValueError, match='differs from the data this model was trained on'):
        load_run(str(out / 'model.pt'))
    loaded = load_run(str(out / 'model.pt'), data=graph)
    assert isinstance(loaded, LoadedRun) and loaded.run.to_dict() == result.run.to_dict()
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k])
    from native_pyg.evaluation import LinkPredictionEvaluator
    from native_pyg.data import split_triples
    test = LinkPredictionEvaluator.from_data(loaded.data).evaluate(
        loaded.model, split_triples(loaded.data, 'test'))
    assert test['both']['mrr'] == pytest.approx(result.test['both']['mrr'], rel=1e-6)


def test_load_run_errors_are_one_line(done, graph, tmp_path):
    out, _ = done
    not_a_checkpoint = tmp_path / 'notes.pt'
    not_a_checkpoint.write_text('hello')
    torch.save({'weights': torch.zeros(2)}, tmp_path / 'foreign.pt')
    for path in (not_a_checkpoint, tmp_path / 'foreign.pt', tmp_path / 'missing.pt'):
        with pytest.raises(ValueError) as info:
            load_run(str(path))
        assert str(path) in str(info.value) and '\n' not in str(info.value)
    # a run whose data root moved away names the root and how to point at it
    state = torch.load(out / 'model.pt', weights_only=True)
    state['config']['root'] = str(tmp_path / 'gone')
    torch.save(state, tmp_path / 'moved.pt')
    with pytest.raises(ValueError, match=r'which does not exist here; give --root') as info:
        load_run(str(tmp_path / 'moved.pt'))
    assert '\n' not in str(info.value)
    # weights of another size
    state = torch.load(out / 'model.pt', weights_only=True)
    state['config']['model']['hidden_channels'] = 6
    torch.save(state, tmp_path / 'resized.pt')
    with pytest.raises(ValueError, match='its weights do not fit'):
        load_run(str(tmp_path / 'resized.pt'), data=graph)


def test_pipeline_resumes_and_overwrites_like_the_cli(graph, tmp_path):
    # issue 39: the README's CLI run, then pipeline() into the same folder
    out = str(tmp_path / 'run')
    pipeline(data=graph, out=out, **TINY)
    before = (tmp_path / 'run' / 'metrics.json').read_bytes()
    with pytest.raises(ValueError, match='continue it with resume=True, or replace it with '
                                         'overwrite=True'):
        pipeline(data=graph, out=out, **TINY)
    with pytest.raises(ValueError, match='give one of them'):
        pipeline(data=graph, out=out, resume=True, overwrite=True, **TINY)
    assert (tmp_path / 'run' / 'metrics.json').read_bytes() == before
    resumed = pipeline(data=graph, out=out, resume=True, **{**TINY, 'epochs': 3})
    assert resumed.trainer.epoch == 3 and len(resumed.history) == 3  # two kept, one more
    replaced = pipeline(data=graph, out=out, overwrite=True, **{**TINY, 'epochs': 1})
    assert replaced.trainer.epoch == 1
    assert json.loads((tmp_path / 'run' / 'metrics.json').read_text())['epochs'] == 1
    assert not (tmp_path / 'run' / '.replaced-run').exists()
    with pytest.raises(ValueError, match='no checkpoint at'):
        pipeline(data=graph, out=str(tmp_path / 'new'), resume=True, **TINY)


def test_pipeline_seeds_the_process_right_before_the_trainer(graph, monkeypatch):
    import native_pyg.pipeline as pipeline_module
    seeds = []

    class Recording(pipeline_module.Trainer):
        def __init__(self, *args, **kwargs):
            seeds.append(torch.initial_seed())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, 'Trainer', Recording)
    torch.manual_seed(12345)
    pipeline(data=graph, evaluate=False, seed=9, **{**TINY, 'epochs': 1})
    assert seeds == [9]
