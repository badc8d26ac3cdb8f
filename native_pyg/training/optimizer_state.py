"""An optimiser's state let go between two :meth:`~native_pyg.training.Trainer.fit`
calls while the run's ``last.pt`` holds it: Adam's two moments of an R-GCN's
full relation weights are 640 MB at 2 x 500 edge types, 2 layers and dim 200, dead
weight while a finished run evaluates and predicts."""
from __future__ import annotations

from typing import List, Optional, Union

import torch

from native_pyg.training.checkpoint import load_checkpoint
from native_pyg.training.optimizers import SplitOptimizer


def _parts(optimizer: Union[torch.optim.Optimizer, SplitOptimizer]
           ) -> List[torch.optim.Optimizer]:
    """The torch optimisers inside ``optimizer``: a :class:`SplitOptimizer`'s
    two (or one), or the optimiser itself."""
    return optimizer.optimizers if isinstance(optimizer, SplitOptimizer) else [optimizer]


class OptimizerStateInFile:
    r"""Where an optimiser's state lives between fits: in memory, or only
    in a checkpoint file under ``key``.

    :meth:`release` empties the optimiser's state after the file was
    written with it; :meth:`restore` reads it back (the tensors copied out
    of a memory-mapped load, the current learning rates kept), before the
    next step or a full ``state_dict``. :meth:`forget` is for a state loaded
    from elsewhere (``resume``), which the file must not overwrite.

    Args:
        optimizer: A :class:`torch.optim.Optimizer` or a
            :class:`~native_pyg.training.optimizers.SplitOptimizer`.
        key (str): Its entry in the checkpoint. (default: ``'optimizer'``)
    """

    def __init__(self, optimizer: Union[torch.optim.Optimizer, SplitOptimizer],
                 key: str = 'optimizer') -> None:
        self.optimizer, self.key = optimizer, key
        self.path: Optional[str] = None

    @property
    def released(self) -> bool:
        """Whether the state is in the file only."""
        return self.path is not None

    def release(self, path: str) -> None:
        """Lets the state go; ``path`` holds it under :attr:`key`."""
        for part in _parts(self.optimizer):
            part.state.clear()
        self.path = path

    def restore(self) -> None:
        """Reads the state back from the file, if it was released."""
        if self.path is None:
            return
        saved = load_checkpoint(self.path, map_location='cpu', mmap=True)[self.key]
        lrs = [group['lr'] for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(saved)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group['lr'] = lr
        for part in _parts(self.optimizer):  # own copies, not pages of the mapped file
            for state in part.state.values():
                for name, value in state.items():
                    if torch.is_tensor(value):
                        state[name] = value.clone()
        self.path = None

    def forget(self) -> None:
        """The optimiser's state was set from elsewhere: the file no longer holds it."""
        self.path = None

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(key={self.key!r}, released={self.released})'
