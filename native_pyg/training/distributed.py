r"""Training and evaluation over several processes with :mod:`torch.distributed`.

Under ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``) :func:`init_distributed` joins the
process group (NCCL on CUDA, Gloo on CPUs); :class:`~native_pyg.training.Trainer`
then wraps the model's loss in
:class:`~torch.nn.parallel.DistributedDataParallel` (:class:`DistributedLoss`)
and the CoMAT generator too, shards every epoch's training triples over the
ranks, and evaluates with the queries split over the ranks
(:func:`sharded_ranks`). Without ``torchrun`` everything here is a no-op.
"""
from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NoReturn, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from native_pyg.nn.sharded_table import collective_device

#: how long a collective waits for a rank that stopped answering
TIMEOUT = datetime.timedelta(seconds=float(os.environ.get('NATIVE_PYG_DIST_TIMEOUT', 600)))
#: whether this process has left a process group (:func:`finish`); see :func:`exit_process`
_left_group = False


@dataclass(frozen=True)
class DistributedInfo:
    """This process's place in the process group (rank 0 of 1 outside it)."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, checkpoints and metrics."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def current() -> DistributedInfo:
    """The process group this process is in, if any."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedInfo()
    return DistributedInfo(dist.get_rank(), dist.get_world_size(),
                           int(os.environ.get('LOCAL_RANK', dist.get_rank())))


def init_distributed(device: str = 'auto') -> DistributedInfo:
    """Joins the process group ``torchrun`` describes in the environment
    (``WORLD_SIZE`` > 1): NCCL when CUDA is used, else Gloo; each CUDA rank
    takes the GPU ``LOCAL_RANK``. Returns :func:`current` (rank 0 of 1
    without ``torchrun``)."""
    if int(os.environ.get('WORLD_SIZE', '1')) <= 1 or (dist.is_available()
                                                        and dist.is_initialized()):
        return current()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    cuda = device != 'cpu' and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    dist.init_process_group('nccl' if cuda else 'gloo', timeout=TIMEOUT)
    return current()


def shard_permutation(perm: Tensor, rank: int, world_size: int) -> Tensor:
    r"""This rank's part of an epoch's permutation, with
    :class:`~torch.utils.data.DistributedSampler` semantics: padded by
    wrapping around to a multiple of ``world_size`` (so every rank takes the
    same number of steps), then every ``world_size``-th entry from ``rank``.
    Every triple is used once per epoch across the ranks (at most
    ``world_size - 1`` of them twice, the padding)."""
    if world_size == 1:
        return perm
    total = -(-perm.numel() // world_size) * world_size
    if total > perm.numel():
        perm = torch.cat([perm, perm[:total - perm.numel()]])
    return perm[rank:total:world_size]


class DistributedLoss(torch.nn.Module):
    r"""A step's loss as a module, for
    :class:`~torch.nn.parallel.DistributedDataParallel`: its parameters are
    the model's, its ``forward`` calls ``loss_fn`` (which may call any of
    the model's methods), so DDP averages the model's gradients over the
    ranks in the backward pass.

    Args:
        model (torch.nn.Module): The model whose gradients are synchronised.
        loss_fn (callable): ``(*args) -> (loss, info)``.
    """
    def __init__(self, model: torch.nn.Module, loss_fn: Callable[..., Tuple[Tensor, Any]]):
        super().__init__()
        self.model = model
        self._loss_fn = [loss_fn]  # a list: not a registered submodule

    def forward(self, *args) -> Tuple[Tensor, Any]:
        return self._loss_fn[0](*args)


def wrap(module: torch.nn.Module, device: torch.device,
         ignore: Sequence[str] = ()) -> torch.nn.Module:
    """``module`` in :class:`~torch.nn.parallel.DistributedDataParallel`
    (parameters broadcast from rank 0; constant buffers such as features are
    not re-broadcast each step), the parameters named in ``ignore`` left out
    (a sharded table's: each process holds other rows)."""
    import warnings
    from torch.nn.parallel import DistributedDataParallel
    if ignore:
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, list(ignore))
    with warnings.catch_warnings():  # newer releases rename broadcast_buffers
        warnings.simplefilter('ignore', FutureWarning)
        # find_unused_parameters: a step may not touch every modality encoder
        return DistributedDataParallel(
            module, device_ids=[device.index or 0] if device.type == 'cuda' else None,
            broadcast_buffers=False, find_unused_parameters=True)


@contextlib.contextmanager
def main_first(info: DistributedInfo) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. processing a dataset into its
    cache, preparing a run directory), the other ranks after it. If the
    block fails on rank 0, the other ranks raise :class:`PeerFailed` instead
    of running theirs (rank 0 reports the cause; they stop quietly)."""
    if info.enabled and not info.is_main:
        verdict = [None]
        dist.broadcast_object_list(verdict, src=0)
        if verdict[0] is not None:
            raise PeerFailed(f"rank 0 failed: {verdict[0]}")
        yield
        return
    try:
        yield
    except BaseException as e:
        if info.enabled:
            dist.broadcast_object_list([type(e).__name__], src=0)
        raise
    if info.enabled:
        dist.broadcast_object_list([None], src=0)


class PeerFailed(RuntimeError):
    """Rank 0 failed in a :func:`main_first` block this rank waited on."""


def sharded_ranks(ranks_fn: Callable[[Tensor], Tuple[Tensor, ...]], triples: Tensor,
                  info: DistributedInfo) -> Tuple[Tensor, ...]:
    r"""Evaluation ranks with the triples split over the processes: each
    rank ranks a contiguous slice (``ranks_fn(slice) -> (head, tail,
    raw_head, raw_tail)``), then all ranks gather every slice, in order, so
    every rank computes the same metrics as one process would."""
    if not info.enabled:
        return ranks_fn(triples)
    bounds = torch.linspace(0, triples.size(0), info.world_size + 1).round().long().tolist()
    mine = triples[bounds[info.rank]:bounds[info.rank + 1]]
    local = (torch.stack(ranks_fn(mine)) if mine.size(0)
             else torch.empty(4, 0))
    # Gloo gathers equal shapes: pad every slice to the longest
    longest = max(b - a for a, b in zip(bounds, bounds[1:]))
    device = collective_device()
    padded = torch.zeros(4, longest, dtype=torch.float64, device=device)
    padded[:, :local.size(1)] = local.to(device, torch.float64)
    parts = [torch.empty_like(padded) for _ in range(info.world_size)]
    dist.all_gather(parts, padded)
    out = torch.cat([p[:, :b - a] for p, a, b in zip(parts, bounds, bounds[1:])], dim=1)
    return tuple(out.cpu().to(local.dtype if local.numel() else torch.float).unbind(0))



def gather_objects(obj: Any, info: DistributedInfo) -> list:
    """``obj`` of every rank, by rank (every rank must call this)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def finish(ok: bool = True) -> None:
    """Leaves the process group: after a barrier when this rank succeeded
    (no rank exits while another still talks to it), at once otherwise."""
    global _left_group
    if dist.is_available() and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()
        _left_group = True


def exit_process(code: int) -> NoReturn:
    """Ends the process with exit status ``code``.

    A process that left a process group (:func:`finish`) skips the
    interpreter's finalisation. Gloo's worker threads may still hold the
    last reference to a tensor a collective used; dropping it takes the
    GIL, and a thread that asks for the GIL once finalisation has begun is
    stopped mid-destructor: the process aborts (``terminate called without
    an active exception``, SIGABRT) after a run that succeeded. The exit
    handlers (:mod:`atexit`: logging, temporary directories) still run and
    the standard streams are flushed first; other processes exit as usual.
    """
    if not _left_group:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
