"""Early stopping on a validation metric."""
from __future__ import annotations

import math
from typing import Any, Dict


class EarlyStopper:
    r"""Tracks a validation metric where larger is better (e.g. filtered
    MRR) and says when to stop: after ``patience`` evaluations in a row
    without a gain,

    .. math::
        \mathrm{stop} \iff p > 0 \ \wedge\ \big|\{\text{evaluations since the
        last } v_e > v^{*}\}\big| \ge p,

    where :math:`v^{*}` is the best value so far. An evaluation improves
    when its value is strictly larger than :math:`v^{*}`. Modelled on
    PyKEEN's ``EarlyStopper``; the :class:`~native_pyg.training.Trainer`
    keeps the parameters of :attr:`best_epoch`.

    Args:
        patience (int, optional): Evaluations without a gain before
            stopping; :obj:`0` never stops. (default: :obj:`0`)
    """

    def __init__(self, patience: int = 0) -> None:
        if patience < 0:
            raise ValueError(f"patience must be at least 0, got {patience}")
        self.patience = int(patience)
        self.best_value = -math.inf
        self.best_epoch = 0
        self.bad_evals = 0

    def update(self, epoch: int, value: float) -> bool:
        """Records the metric ``value`` of ``epoch``; returns whether it is
        the best so far."""
        if value > self.best_value:
            self.best_value, self.best_epoch, self.bad_evals = value, epoch, 0
            return True
        self.bad_evals += 1
        return False

    @property
    def should_stop(self) -> bool:
        """Whether ``patience`` evaluations in a row brought no gain."""
        return self.patience > 0 and self.bad_evals >= self.patience

    def state_dict(self) -> Dict[str, Any]:
        return {'best_value': self.best_value, 'best_epoch': self.best_epoch,
                'bad_evals': self.bad_evals}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best_value = float(state['best_value'])
        self.best_epoch = int(state['best_epoch'])
        self.bad_evals = int(state['bad_evals'])

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(patience={self.patience}, '
                f'best_value={self.best_value:.4f}, best_epoch={self.best_epoch})')
