"""The parameters of the best validation so far, kept for the end of training."""
from __future__ import annotations

import os.path as osp
from typing import Any, Callable, Dict, Optional

import torch

from native_pyg.training.checkpoint import load_checkpoint, load_weights_into, save_checkpoint


class BestWeights:
    r"""The model parameters of the epoch with the best validation score.

    They are kept as a copy in memory, as the checkpoint file ``best.pt``
    of a run folder, or both. A copy of an entity table of millions of
    rows is gigabytes: a run with a folder keeps only the file, which it
    writes anyway so that a killed run keeps its best epoch. In memory, a
    better epoch is copied into the kept tensors, so that a third copy of
    the table never exists, not even for a moment.

    The file of a better epoch is written after that epoch's ``last.pt``
    (:meth:`commit`): a kill between the two leaves a ``last.pt`` whose
    own weights are the best ones, which :meth:`resumed` writes again.

    Args:
        folder (str, optional): The run folder whose ``best.pt`` keeps them.
            (default: :obj:`None`)
        in_memory (bool, optional): Keep a copy in memory too. (default:
            :obj:`True` without a folder, else :obj:`False`)
    """

    file_name = 'best.pt'

    def __init__(self, folder: Optional[str] = None, in_memory: Optional[bool] = None) -> None:
        self.folder = folder
        self.in_memory = folder is None if in_memory is None else in_memory
        if not self.in_memory and folder is None:
            raise ValueError("BestWeights: without a folder the weights must be kept in memory")
        #: the best epoch whose weights are kept (``None``: none yet)
        self.epoch: Optional[int] = None
        #: the kept tensors (in memory)
        self.state: Optional[Dict[str, torch.Tensor]] = None
        self._file: Optional[str] = None  # where the folder holds them, once known
        self._unwritten = False

    @property
    def kept(self) -> bool:
        """Whether any epoch's weights are kept."""
        return self.epoch is not None

    def keep(self, model: torch.nn.Module, epoch: int) -> None:
        """Keeps ``model``'s current parameters as those of ``epoch``: copied
        in memory now, written to the folder by :meth:`commit`."""
        if self.in_memory:
            state, best = model.state_dict(), self.state
            if best is not None and best.keys() == state.keys() and all(
                    best[k].shape == v.shape and best[k].dtype == v.dtype
                    for k, v in state.items()):
                for k, v in state.items():
                    best[k].copy_(v.detach())
            else:
                self.state = {k: v.detach().clone() for k, v in state.items()}
        self.epoch, self._unwritten = epoch, self.folder is not None

    def commit(self, checkpoint: Callable[[], Dict[str, Any]]) -> None:
        """Writes the epoch kept since the last commit to ``best.pt``
        (atomically): ``checkpoint()`` is a dict holding the model's
        current parameters under ``'model'`` and their ``weights_epoch``."""
        if self._unwritten:
            self._file = osp.join(self.folder, self.file_name)
            save_checkpoint(checkpoint(), self._file)
            self._unwritten = False

    def superseded(self, name: str) -> None:
        """The kept weights now lie in ``name`` of the folder (``model.pt``,
        written from them) and ``best.pt`` is gone."""
        if self.folder is not None and self.kept:
            self._file = osp.join(self.folder, name)

    def load_into(self, model: torch.nn.Module) -> None:
        """Loads the kept weights into ``model`` (copied into its tensors)."""
        if not self.kept:
            raise RuntimeError("no best weights kept yet")
        if self.in_memory:
            model.load_state_dict(self.state)
            return
        load_weights_into(model, self._file or self._find())

    def _holds(self, path: str) -> bool:
        return osp.exists(path) and \
            load_checkpoint(path, mmap=True).get('weights_epoch') == self.epoch

    def _find(self) -> str:
        """The folder's file with the best epoch's weights (after a resume:
        ``best.pt`` of a run still training, else ``model.pt``)."""
        for name in (self.file_name, 'model.pt'):
            path = osp.join(self.folder, name)
            if self._holds(path):
                self._file = path
                return path
        raise ValueError(f"{self.folder}: neither {self.file_name} nor model.pt holds the weights "
                         f"of the best epoch ({self.epoch}); they are needed to end this run")

    # --- in last.pt ------------------------------------------------------------------
    def state_dict(self) -> Any:
        """What ``last.pt`` records: the tensors in memory, or which epoch's
        weights the folder holds."""
        if self.in_memory:
            return self.state
        return None if self.epoch is None else {'epoch_in_folder': self.epoch}

    def load_state_dict(self, value: Any, best_epoch: int) -> None:
        """Restores from :meth:`state_dict` (``best_epoch``: the stopper's).
        Tensors (written by a run without a folder, or by an earlier
        version) are kept in memory from here on."""
        self._file, self._unwritten = None, False
        if value is None:
            self.state, self.epoch = None, None
        elif isinstance(value, dict) and set(value) == {'epoch_in_folder'}:
            if self.folder is None:
                raise ValueError("the checkpoint keeps its best weights in its run folder; "
                                 "resume it with that folder")
            self.state, self.epoch = None, int(value['epoch_in_folder'])
        else:
            self.state, self.epoch, self.in_memory = dict(value), best_epoch, True

    def resumed(self, model: torch.nn.Module, epoch: int,
                checkpoint: Callable[[], Dict[str, Any]]) -> None:
        """After :meth:`load_state_dict` from a ``last.pt`` of ``epoch``,
        with ``model`` holding its weights: where the best epoch is that
        epoch and no file of the folder holds it yet (a kill between
        ``last.pt`` and ``best.pt``), it is written now."""
        if self.in_memory or self.epoch is None or self.epoch != epoch:
            return
        if not any(self._holds(osp.join(self.folder, n)) for n in (self.file_name, 'model.pt')):
            self._unwritten = True
            self.commit(checkpoint)

    def __repr__(self) -> str:
        where = ([] if not self.in_memory else ['memory']) + \
            ([] if self.folder is None else [repr(self.folder)])
        return f"{self.__class__.__name__}(epoch={self.epoch}, in={' and '.join(where)})"
