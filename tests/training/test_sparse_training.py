"""Training with a sparse entity table: only the rows a step touches change,
and the run learns and resumes like the dense one."""
import pytest
import torch

from native_pyg.data import split_triples
from native_pyg.loader.neighbor_loader import KGBatch
from native_pyg.datasets import SyntheticMMKG
from native_pyg.pipeline import build_model
from native_pyg.training import RunConfig, Trainer
from native_pyg.training.optimizers import SplitOptimizer
from tests.helpers.runs import seeded_trainer


@pytest.fixture(scope='module')
def small():
    return SyntheticMMKG(seed=1, num_entities=300, num_relations=4)[0]


def run_config(table_optimizer, **training):
    run = RunConfig().override(['model.hidden_channels=8', 'model.margin=6.0',
                                'training.batch_size=64', 'training.num_negatives=4',
                                'training.shared_negatives=64', 'training.progress=false',
                                'training.eval_every=0', 'training.lr=0.02',
                                f'training.table_optimizer={table_optimizer}'])
    for k, v in training.items():
        setattr(run.training, k, v)
    return run


@pytest.mark.parametrize('table_optimizer', ['sparse_adam', 'rowwise_adagrad'])
def test_a_step_changes_the_rows_it_touches_only(small, table_optimizer):
    run = run_config(table_optimizer, regul_rate=0.01)
    model = build_model(small, run)
    trainer = Trainer(model, small, run)
    assert model.entity_emb.sparse and isinstance(trainer.optimizer, SplitOptimizer)
    before = model.entity_emb.weight.detach().clone()
    pos = split_triples(small, 'train')[:64]
    neg, corrupt_head = trainer.sampler.sample(pos)
    trainer.train_step(KGBatch(pos, neg, corrupt_head))
    touched = torch.zeros(300, dtype=torch.bool)
    touched[torch.cat([pos[:, 0], pos[:, 2], neg.flatten()])] = True
    moved = (model.entity_emb.weight.detach() != before).any(1)
    assert bool(moved[touched].all()) and not bool(moved[~touched].any())


def test_sparse_rows_learn_and_resume_exactly(small, tmp_path, one_thread):
    losses = {}
    for name in ('adam', 'rowwise_adagrad'):
        run = run_config(name, epochs=4)
        trainer = seeded_trainer(small, run)
        history = trainer.fit()
        losses[name] = [h['loss'] for h in history]
        assert history[-1]['loss'] < history[0]['loss']
    run = run_config('rowwise_adagrad', epochs=2)
    first = seeded_trainer(small, run, out_dir=str(tmp_path))
    first.fit()
    run.training.epochs = 4
    resumed = seeded_trainer(small, run)
    resumed.resume(str(tmp_path / 'last.pt'))
    resumed.fit()
    assert [h['loss'] for h in resumed.history] == losses['rowwise_adagrad']


def test_full_graph_gnn_needs_sampled_steps(small):
    run = run_config('sparse_adam')
    run.model.encoder = 'rgcn'
    with pytest.raises(ValueError, match='num_neighbors'):
        Trainer(build_model(small, run), small, run)


def test_a_replicated_row_sparse_table_under_torchrun_is_one_line(small, monkeypatch):
    """DDP cannot average sparse gradients (it failed deep in the backward
    pass); a sharded table is the way to a row-wise table over processes."""
    from native_pyg.training import distributed
    monkeypatch.setattr(distributed, 'current', lambda: distributed.DistributedInfo(0, 2))
    run = run_config('rowwise_adagrad')
    with pytest.raises(ValueError, match='under torchrun: DDP cannot average row-sparse'):
        Trainer(build_model(small, run), small, run)
