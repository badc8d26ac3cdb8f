"""Small trained runs and run comparisons the tests share."""
import torch

#: a one-epoch pipeline run on a small graph, no validation
TINY = dict(hidden_channels=8, epochs=1, eval_every=0, batch_size=512, num_negatives=4,
            progress=False)


def tiny_pipeline_run(out, seed: int, num_entities: int, num_relations: int = 3):
    """:func:`~native_pyg.pipeline.pipeline` of :data:`TINY` on a synthetic
    graph, written to ``out``."""
    from native_pyg.datasets import SyntheticMMKG
    from native_pyg.pipeline import pipeline
    data = SyntheticMMKG(seed=seed, num_entities=num_entities, num_relations=num_relations)[0]
    return pipeline(data=data, out=str(out), **TINY)


def assert_same_training(a, b, epochs: int) -> None:
    """Two ``last.pt`` checkpoints of the same run: equal epochs, bit-equal
    model and generator, equal loss history."""
    assert a['epoch'] == b['epoch'] == epochs
    for part in ('model', 'generator'):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), f'{part}.{k} differs after resume'
    assert [r['loss'] for r in a['history']] == [r['loss'] for r in b['history']]


def seeded_trainer(data, run, **kwargs):
    """A :class:`~native_pyg.training.Trainer` built as a run builds it: the
    model, then the process set up for the run (its seed, determinism; the
    test's threads kept), then the trainer."""
    from native_pyg.pipeline import build_model
    from native_pyg.training import Trainer, setup_process
    model = build_model(data, run)
    setup_process(run.training, threads=False)
    return Trainer(model, data, run, **kwargs)
