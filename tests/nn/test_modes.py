"""evaluating: eval mode for a block, the module's own mode after it."""
import pytest
import torch

from native_pyg.nn.modes import evaluating


@pytest.mark.parametrize('training', [True, False])
def test_the_mode_is_eval_inside_and_restored_after_also_on_errors(training):
    module = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(2, 2)).train(training)
    with evaluating(module):
        assert not module.training and not module[0].training
    assert module.training is training and module[0].training is training
    with pytest.raises(KeyboardInterrupt):
        with evaluating(module):
            raise KeyboardInterrupt
    assert module.training is training


def test_an_object_without_a_mode_passes_through():
    class Scorer:  # e.g. a plain callable handed to an evaluator
        pass
    with evaluating(Scorer()):
        pass
