r"""Epochs of a fixed number of steps (``training.steps_per_epoch``).

An epoch of a graph with :math:`E` training triples is :math:`E / B`
steps: 15,600 at 16 M triples, hours on a CPU. With ``steps_per_epoch: S``
an epoch is the next :math:`S` steps of an unbroken stream of passes over
the shuffled training triples (a pass ends, the next one starts with a new
permutation), so validation, checkpoints, early stopping and the progress
bar work on budgets a large graph allows. ``0`` keeps one epoch per pass.

A checkpoint records where the stream stands (the shuffling generator's
state at the start of the current pass and the steps taken in it), so a
resumed run takes the same steps as one that never stopped: the pass's
permutation is drawn again and its first steps are skipped without drawing
their negatives.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, Optional

import torch

from native_pyg.loader.neighbor_loader import KGBatch


class StepWindows:
    r"""The steps of each epoch: a whole pass of ``steps``, or the next
    ``steps_per_epoch`` of the stream of passes.

    Args:
        steps (Iterable[KGBatch]): One pass per iteration (a
            :class:`~native_pyg.training.batching.TripleBatches` or a loader
            over one).
        passes: The :class:`~native_pyg.training.batching.TripleBatches`
            that draws each pass (its ``start`` skips the first steps).
        generator (torch.Generator): The shuffling generator of ``passes``.
        steps_per_epoch (int): :math:`S`, or ``0`` for one epoch per pass.
    """
    def __init__(self, steps: Iterable[KGBatch], passes, generator: torch.Generator,
                 steps_per_epoch: int = 0):
        if steps_per_epoch < 0:
            raise ValueError(f"training.steps_per_epoch must be >= 0, got {steps_per_epoch}")
        self.steps, self.passes, self.generator = steps, passes, generator
        self.steps_per_epoch = int(steps_per_epoch)
        self._pass: Optional[Iterator[KGBatch]] = None
        self._pass_rng: Optional[torch.Tensor] = None
        self._pass_step = 0

    def __len__(self) -> int:
        return self.steps_per_epoch or len(self.steps)

    def epoch(self) -> Iterable[KGBatch]:
        """The steps of the next epoch: ``steps`` themselves with one epoch
        per pass (iterated exactly as without this class)."""
        return self.steps if not self.steps_per_epoch else self._window()

    def _window(self) -> Iterator[KGBatch]:
        done = 0
        while done < self.steps_per_epoch:
            if self._pass is None:  # a new pass (or the resumed one, from its step)
                self._pass_rng = self.generator.get_state()
                self.passes.start = self._pass_step
                self._pass = iter(self.steps)
            try:
                batch = next(self._pass)
            except StopIteration:
                self._pass, self._pass_step = None, 0
                continue
            self._pass_step += 1
            done += 1
            yield batch

    def state_dict(self) -> Dict[str, Any]:
        """Where the stream stands: the pass's first generator state and the
        steps taken in it (empty with one epoch per pass)."""
        if not self.steps_per_epoch or self._pass_rng is None:
            return {}
        return {'pass_rng': self._pass_rng, 'pass_step': self._pass_step}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continues the stream where :meth:`state_dict` left it."""
        self._pass = None
        if state and self.steps_per_epoch:
            self.generator.set_state(state['pass_rng'])
            self._pass_step = int(state['pass_step'])
