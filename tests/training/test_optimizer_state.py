"""The optimiser's state let go after fit() while last.pt holds it, read
back before the next step or a full checkpoint."""
import pytest
import torch

from native_pyg.datasets import SyntheticMMKG
from native_pyg.training.checkpoint import load_checkpoint, save_checkpoint
from native_pyg.training.optimizer_state import OptimizerStateInFile
from native_pyg.training.optimizers import SplitOptimizer, build_optimizer


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.entity_emb = torch.nn.Embedding(20, 4, sparse=True)
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, i):
        return self.lin(self.entity_emb(i)).sum()


def _steps(model, opt, n, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        opt.zero_grad()
        model(torch.randint(0, 20, (6,), generator=g)).backward()
        opt.step()


def test_released_state_comes_back_the_same(tmp_path):
    torch.manual_seed(0)
    model = _Model()
    opt = build_optimizer(model, 0.1, 'rowwise_adagrad')
    assert isinstance(opt, SplitOptimizer)
    _steps(model, opt, 3, 0)
    path = str(tmp_path / 'last.pt')
    save_checkpoint({'optimizer': opt.state_dict()}, path)
    before = opt.state_dict()
    held = OptimizerStateInFile(opt)
    held.release(path)
    assert held.released and not opt.table.state and not opt.dense.state  # memory let go
    for group in opt.param_groups:  # a learning rate set meanwhile is kept
        group['lr'] = 0.05
    held.restore()
    assert not held.released
    after = opt.state_dict()
    for name in ('table', 'dense'):
        for k, v in before[name]['state'].items():
            for key, t in v.items():
                assert torch.equal(t, after[name]['state'][k][key])
    assert all(group['lr'] == 0.05 for group in opt.param_groups)
    # the steps continue as they would have without the release
    twin = _Model()
    twin.load_state_dict(model.state_dict())
    twin_opt = build_optimizer(twin, 0.05, 'rowwise_adagrad')
    twin_opt.load_state_dict(load_checkpoint(path)['optimizer'])
    for group in twin_opt.param_groups:
        group['lr'] = 0.05
    _steps(model, opt, 2, 1)
    _steps(twin, twin_opt, 2, 1)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def test_a_state_loaded_meanwhile_is_not_overwritten(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), 0.1)
    opt.zero_grad()
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    path = str(tmp_path / 'last.pt')
    save_checkpoint({'optimizer': opt.state_dict()}, path)
    held = OptimizerStateInFile(opt)
    held.release(path)
    held.forget()  # e.g. resume() loaded another state
    held.restore()
    assert not opt.state  # the file was not read back


@pytest.fixture(scope='module')
def small():
    return SyntheticMMKG(seed=1, num_entities=300, num_relations=4)[0]


def test_trainer_releases_after_fit_and_checkpoints_stay_whole(small, one_thread, tmp_path):
    from native_pyg.pipeline import build_model
    from native_pyg.training import Trainer
    from tests.conftest import small_run
    run = small_run(adversarial=False, epochs=2, eval_every=1)
    trainer = Trainer(build_model(small, run), small, run, out_dir=str(tmp_path))
    trainer.fit()
    assert trainer.optimizer_state.released and not trainer.optimizer.state
    saved = load_checkpoint(str(tmp_path / 'last.pt'))['optimizer']
    full = trainer.state_dict()  # a full checkpoint reads it back first
    assert not trainer.optimizer_state.released
    assert full['optimizer']['state'].keys() == saved['state'].keys() and saved['state']
    for k, v in saved['state'].items():
        for key, t in v.items():
            assert torch.equal(torch.as_tensor(t), torch.as_tensor(full['optimizer']['state'][k][key]))
    memory = Trainer(build_model(small, run), small, run)  # no folder: kept in memory
    memory.fit()
    assert not memory.optimizer_state.released and memory.optimizer.state
