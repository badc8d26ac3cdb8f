"""What a run sets for the whole process: one call, ``setup_process``."""
import pytest
import torch

from native_pyg.config import RunConfig
from native_pyg.training.process import resolve_device, setup_process


@pytest.fixture
def restore_process():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    state = torch.random.get_rng_state()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.random.set_rng_state(state)


def test_the_global_seed_is_the_runs_seed_plus_the_rank(restore_process):
    run = RunConfig().override(['training.seed=7'])
    setup_process(run.training, rank=0, threads=False)
    first = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(first, torch.rand(3))
    setup_process(run.training, rank=2, threads=False)
    third = torch.rand(3)
    torch.manual_seed(9)
    assert torch.equal(third, torch.rand(3)) and not torch.equal(first, third)


def test_deterministic_runs_get_one_thread_and_deterministic_algorithms(restore_process):
    torch.use_deterministic_algorithms(False)
    run = RunConfig().override(['training.deterministic=true', 'training.threads=2'])
    threads, warning = setup_process(run.training, rank=0)
    assert threads == 1 == torch.get_num_threads()
    assert torch.are_deterministic_algorithms_enabled()


def test_threads_are_set_only_when_asked(restore_process):
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(2)
    run = RunConfig().override(['training.threads=1'])
    assert setup_process(run.training, rank=0, threads=False)[0] == 2 == torch.get_num_threads()
    assert setup_process(run.training, rank=0)[0] == 1 == torch.get_num_threads()
    assert not torch.are_deterministic_algorithms_enabled()  # a run that does not ask


def test_an_unknown_device_is_one_line():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device('tpu')
