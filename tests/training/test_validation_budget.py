"""Validation through a named protocol, on a sample, and epochs of a fixed
number of steps (issue 40, part 2)."""
import pytest
import torch

from native_pyg.data import split_triples
from native_pyg.data.feature_store import DiskFeatureStore
from native_pyg.pipeline import build_model, final_metrics
from native_pyg.training import Trainer, load_checkpoint
from native_pyg.training.step_windows import StepWindows
from native_pyg.training.validation import resolve_protocol
from tests.conftest import small_run
from tests.helpers.runs import assert_same_training, seeded_trainer


@pytest.fixture(scope='module')
def small():
    from native_pyg.datasets import SyntheticMMKG
    return SyntheticMMKG(seed=1, num_entities=300, num_relations=4)[0]


def test_epochs_of_s_steps_stream_over_passes(small):
    run = small_run(adversarial=False, epochs=1, steps_per_epoch=5, batch_size=64)
    trainer = Trainer(build_model(small, run), small, run)
    per_pass = len(trainer.steps)
    assert len(trainer.windows) == 5 and per_pass > 5
    seen = []
    for _ in range(-(-2 * per_pass // 5)):  # two passes and a bit
        seen += [batch.pos for batch in trainer.windows.epoch()]
    first = torch.cat(seen[:per_pass])
    second = torch.cat(seen[per_pass:2 * per_pass])
    # every pass is a new permutation of the same triples (the batch-cut remainder aside)
    assert first.size(0) == second.size(0) == per_pass * run.training.batch_size
    assert not torch.equal(first, second)
    train = {tuple(t) for t in trainer.train_triples.tolist()}
    assert {tuple(t) for t in first.tolist()} <= train
    assert len({tuple(t) for t in first.tolist()}) == first.size(0)  # no triple twice in a pass
    with pytest.raises(ValueError, match='steps_per_epoch must be >= 0'):
        StepWindows(trainer.steps, trainer.steps, trainer.shuffle_gen, -1)


def test_steps_per_epoch_resumes_exactly(small, tmp_path, one_thread):
    run = small_run(adversarial=True, epochs=6, eval_every=2, steps_per_epoch=7, batch_size=64)
    straight = seeded_trainer(small, run, out_dir=str(tmp_path / 'a'))
    straight.fit()
    a = load_checkpoint(str(tmp_path / 'a' / 'last.pt'))
    first = seeded_trainer(small, run, out_dir=str(tmp_path / 'b'))
    first.fit(epochs=3)  # stops mid-pass: the next pass position is in the checkpoint
    assert load_checkpoint(str(tmp_path / 'b' / 'last.pt'))['step_windows']['pass_step'] > 0
    torch.manual_seed(99)
    resumed = seeded_trainer(small, run, out_dir=str(tmp_path / 'b'))
    resumed.resume(str(tmp_path / 'b' / 'last.pt'))
    resumed.fit()
    assert_same_training(a, load_checkpoint(str(tmp_path / 'b' / 'last.pt')), 6)


def test_validation_on_a_sample_with_its_confidence_interval(small):
    run = small_run(adversarial=False, epochs=1, eval_every=1, eval_sample=40)
    trainer = Trainer(build_model(small, run), small, run)
    trainer.fit()
    valid = trainer.evaluate('valid')
    total = split_triples(small, 'valid').size(0)
    assert valid['sampled_queries'] == 40 < total == valid['total_queries']
    assert valid['num_triples'] == 40 and valid['protocol'] == 'full'
    assert 0 < valid['ci95']['mrr'] < 1
    metrics = final_metrics(trainer)
    assert metrics['test']['protocol'] == 'full' and 'sampled_queries' not in metrics['test']
    # the final test on a seeded subset, said so in metrics.json
    tested = Trainer(trainer.model, small, run.override(['training.test_sample=30']))
    test = final_metrics(tested)['test']
    assert test['sampled_queries'] == 30 < test['total_queries'] == split_triples(small, 'test').size(0)
    assert test['sample_seed'] == run.training.seed and 0 < test['ci95']['mrr'] < 1
    # a whole split by another protocol gives the same ranks as the full one
    streamed = small_run(adversarial=False, epochs=1, eval_protocol='streamed')
    other = Trainer(trainer.model, small, streamed)
    full = trainer.evaluate('test')
    again = other.evaluate('test')
    assert again['protocol'] == 'streamed'
    assert again['both']['mrr'] == pytest.approx(full['both']['mrr'], abs=1e-6)
    assert resolve_protocol('auto', True) == 'streamed' and resolve_protocol('auto', False) == 'full'
    with pytest.raises(ValueError, match='eval_protocol must be one of'):
        resolve_protocol('quick', False)


class AllRowsRefused(DiskFeatureStore):
    """A store that fails the test when asked for every row at once."""
    def _get_tensor(self, attr):
        if attr.index is None or (isinstance(attr.index, slice) and attr.index == slice(None)):
            raise AssertionError(f'asked for all rows of {attr.group_name}.{attr.attr_name}')
        return super()._get_tensor(attr)


def test_validation_on_a_disk_store_never_asks_for_all_rows(small, tmp_path, monkeypatch):
    import native_pyg.builders as placement
    monkeypatch.setattr(placement, 'DiskFeatureStore', AllRowsRefused)
    from native_pyg.data.feature_store import write_feature_store
    from native_pyg.data.schema import modalities
    mods = modalities(small)
    write_feature_store(str(tmp_path / 'store'), {m: small[m].x for m in mods},
                        {m: small[m].mask for m in mods}, dtype='float32')
    run = small_run(adversarial=False, epochs=1, eval_every=1)
    run = run.override([f'data.feature_store={tmp_path / "store"}'])
    trainer = Trainer(build_model(small, run), small, run)
    assert trainer.eval_protocol == 'streamed'
    trainer.fit()  # validation after the epoch: streamed, chunk by chunk
    assert 'valid_mrr' in trainer.history[-1]


def test_malloc_keeps_freed_memory_from_fit_on_not_during_setup(small, monkeypatch):
    # the setup sorts millions of triples on a large graph; kept for reuse, those
    # transients would stay resident until the process ends
    import native_pyg.training.trainer as trainer_module
    calls = []
    monkeypatch.setattr(trainer_module, 'reuse_freed_memory', lambda: calls.append(1) or True)
    run = small_run(adversarial=False, epochs=1, eval_every=0)
    trainer = Trainer(build_model(small, run), small, run)
    assert calls == []
    trainer.fit()
    assert calls == [1]
    off = Trainer(build_model(small, run), small, run.override(['training.reuse_memory=false']))
    off.fit()
    assert calls == [1]


@pytest.mark.skipif(__import__('native_pyg.loader.neighbor_loader', fromlist=['x']).neighbor_sampling_backend()
                    is None, reason='needs torch_sparse')
def test_final_valid_and_test_encode_the_graph_once(small, monkeypatch):
    """A GNN under the streamed protocol: one layer-wise pass for the final
    valid and test, the metrics of two separate evaluations."""
    import native_pyg.nn.layerwise as layerwise
    run = small_run(adversarial=False, epochs=1, eval_protocol='streamed',
                    num_neighbors=[3, 2])
    run.model.encoder = 'rgcn'
    trainer = Trainer(build_model(small, run), small, run)
    trainer.fit()
    apart = {s: trainer.evaluate(s) for s in ('valid', 'test')}
    passes, inner = [], layerwise.layerwise_structural_embeddings
    monkeypatch.setattr(layerwise, 'layerwise_structural_embeddings',
                        lambda *a, **k: passes.append(1) or inner(*a, **k))
    metrics = final_metrics(trainer)
    assert len(passes) == 1
    for split in ('valid', 'test'):
        assert metrics[split]['both'] == apart[split]['both']
    assert not trainer.model.entities_cached  # the cache went with the evaluation
    trainer.evaluate('valid')
    assert len(passes) == 2  # a later evaluation encodes again


def test_nested_freed_memory_contexts_restore_once(monkeypatch):
    """Valid and test inside one evaluate_splits: the inner contexts leave
    malloc's defaults in place until the outermost one ends."""
    import native_pyg.kernels.allocator as allocator
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append(('mallopt', param, value))
            return 1

        def malloc_trim(self, pad):
            calls.append(('trim',))

    monkeypatch.setattr(allocator, '_STATE', {'libc': FakeLibc(), 'returning': 0})
    keep = [('mallopt', allocator.M_MMAP_MAX, 0),
            ('mallopt', allocator.M_TRIM_THRESHOLD, 2 ** 31 - 1)]
    with allocator.freed_memory_returned():
        entered = list(calls)
        with allocator.freed_memory_returned():
            pass
        with allocator.freed_memory_returned():
            pass
        assert calls == entered  # inner contexts changed nothing
    assert entered == [('mallopt', allocator.M_MMAP_MAX, allocator.DEFAULT_MMAP_MAX),
                       ('mallopt', allocator.M_TRIM_THRESHOLD,
                        allocator.DEFAULT_TRIM_THRESHOLD), ('trim',)]
    assert calls[len(entered):] == keep  # kept again once, at the outermost exit
