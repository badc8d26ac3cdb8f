"""EarlyStopper: best value, best epoch, evaluations without a gain."""
import math

import pytest

from native_pyg.training import EarlyStopper


def test_tracks_the_best_and_stops_after_patience():
    stopper = EarlyStopper(patience=2)
    assert stopper.best_value == -math.inf and not stopper.should_stop
    assert stopper.update(1, 0.3)
    assert not stopper.update(2, 0.3)  # equal is no gain
    assert stopper.bad_evals == 1 and not stopper.should_stop
    assert stopper.update(3, 0.4)  # a gain resets the count
    assert (stopper.best_value, stopper.best_epoch, stopper.bad_evals) == (0.4, 3, 0)
    assert not stopper.update(4, 0.1) and not stopper.update(5, 0.2)
    assert stopper.should_stop and stopper.best_epoch == 3
    assert 'patience=2' in repr(stopper)


def test_patience_zero_never_stops():
    stopper = EarlyStopper()
    stopper.update(1, 0.5)
    for epoch in range(2, 50):
        stopper.update(epoch, 0.1)
    assert stopper.bad_evals == 48 and not stopper.should_stop
    with pytest.raises(ValueError, match='patience'):
        EarlyStopper(patience=-1)


def test_state_round_trip():
    stopper = EarlyStopper(patience=3)
    stopper.update(1, 0.2)
    stopper.update(2, 0.1)
    again = EarlyStopper(patience=3)
    again.load_state_dict(stopper.state_dict())
    assert again.state_dict() == stopper.state_dict() == {
        'best_value': 0.2, 'best_epoch': 1, 'bad_evals': 1}
    assert not again.update(3, 0.15) and not again.should_stop
    assert not again.update(4, 0.15) and again.should_stop


def test_a_trainer_stops_by_its_stopper_and_keeps_the_checkpoint_keys(tmp_path):
    from native_pyg.datasets import SyntheticMMKG
    from native_pyg.pipeline import build_model
    from native_pyg.training import RunConfig, Trainer, load_checkpoint
    data = SyntheticMMKG(seed=2, num_entities=200, num_relations=4)[0]
    run = RunConfig().override(['model.hidden_channels=8', 'training.epochs=30',
                                'training.eval_every=1', 'training.lr=0.5',
                                'training.adversarial=false', 'training.progress=false'])
    stopper = EarlyStopper(patience=1)  # training.patience is 0: never stop by itself
    trainer = Trainer(build_model(data, run), data, run, out_dir=str(tmp_path), stopper=stopper)
    trainer.fit()
    assert trainer.stopper is stopper and stopper.should_stop and trainer.epoch < 30
    assert (trainer.best_mrr, trainer.best_epoch, trainer.bad_evals) == (
        stopper.best_value, stopper.best_epoch, stopper.bad_evals)
    last = load_checkpoint(str(tmp_path / 'last.pt'))
    assert (last['best_mrr'], last['best_epoch'], last['bad_evals']) == (
        stopper.best_value, stopper.best_epoch, stopper.bad_evals)
