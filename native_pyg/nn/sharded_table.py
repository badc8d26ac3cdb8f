r"""The entity table sharded row-wise over the processes of a
:mod:`torch.distributed` group with `TorchRec <https://pytorch.org/torchrec>`_,
behind the :class:`~native_pyg.nn.structural_table.StructuralTable`
interface: past one machine's memory, each process holds
:math:`\lceil N / P \rceil` of the :math:`N` rows.

Process :math:`p` of :math:`P` holds the rows
:math:`[\,p \lceil N/P \rceil, (p+1) \lceil N/P \rceil)` (TorchRec's
``row_wise`` sharding of an ``EmbeddingCollection``). A lookup sends every
id to the process that holds its row and the row back (an all-to-all), so a
process may ask for any entity. The rows a step read are updated in the
backward pass by TorchRec's fused row-wise Adagrad, on the process that
holds them, with the gradients of all processes summed and divided by
:math:`P` (as :class:`~torch.nn.parallel.DistributedDataParallel` averages):

.. math::
    G_e \leftarrow G_e + \frac{1}{D}\sum_j g_{ej}^2, \qquad
    \mathbf{E}_e \leftarrow \mathbf{E}_e - \frac{\eta\, \mathbf{g}_e}{\sqrt{G_e} + \epsilon}

Needs the ``distributed`` extra (``make install-distributed``): TorchRec
with the CPU build of FBGEMM.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from native_pyg.nn.structural_table import StructuralTable

#: the one line a missing extra gives
INSTALL = ("a sharded entity table needs TorchRec and FBGEMM: make install-distributed "
           "(pip install 'native_pyg[distributed]', then pip install --no-deps torchrec==1.8.0)")
#: rows drawn at a time by :meth:`ShardedTable.initialize_`
CHUNK_ROWS = 65536
_FEATURE = 'entity'


def collective_device(group: Optional[Any] = None) -> torch.device:
    """The device the collectives of ``group`` (default: the default
    group) run on: this process's GPU under NCCL, else the CPU."""
    import torch.distributed as dist
    if dist.get_backend(group) == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _torchrec():
    try:
        import torchrec  # noqa: F401
        from torchrec.distributed.embedding import EmbeddingCollectionSharder
    except (ImportError, OSError):  # OSError: an FBGEMM built for another torch
        raise ImportError(INSTALL) from None
    return EmbeddingCollectionSharder


class ShardedTable(StructuralTable):
    r"""The table :math:`\mathbf{E} \in \mathbb{R}^{N \times D}` sharded
    row-wise over the processes of ``group`` (see the module's description).

    Args:
        num_embeddings (int): Number of rows :math:`N`.
        embedding_dim (int): Row size :math:`D`.
        lr (float, optional): The fused row-wise Adagrad's learning rate
            :math:`\eta`. (default: ``0.01``)
        eps (float, optional): Its :math:`\epsilon`. (default: ``1e-10``)
        group (ProcessGroup, optional): The processes that share the table.
            (default: the default group)
    """

    #: the rows a step read are the rows it updates, in the backward pass
    sparse = True
    fused = True
    sharded = True

    def __init__(self, num_embeddings: int, embedding_dim: int, lr: float = 0.01,
                 eps: float = 1e-10, group: Optional[Any] = None):
        super().__init__(num_embeddings, embedding_dim)
        sharder_class = _torchrec()
        import torch.distributed as dist
        from torchrec import EmbeddingCollection, EmbeddingConfig
        from torchrec.distributed.shard import shard
        from torchrec.distributed.sharding_plan import (construct_module_sharding_plan,
                                                        row_wise)
        from torchrec.distributed.types import ShardingEnv
        from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
        from torchrec.optim.rowwise_adagrad import RowWiseAdagrad
        if not dist.is_initialized():
            raise RuntimeError("a sharded entity table needs a torch.distributed process group "
                               "(run under torchrun)")
        self.group = group or dist.group.WORLD
        self.trains = True
        self.lr, self.eps = float(lr), float(eps)
        world = dist.get_world_size(self.group)
        collection = EmbeddingCollection(tables=[EmbeddingConfig(
            name=_FEATURE, embedding_dim=self.embedding_dim,
            num_embeddings=self.num_embeddings, feature_names=[_FEATURE])],
            device=torch.device('meta'))  # no process ever allocates the whole table
        apply_optimizer_in_backward(RowWiseAdagrad, collection.parameters(),
                                    {'lr': self.lr, 'eps': self.eps})
        sharder = sharder_class()
        device = collective_device(self.group)  # NCCL shards onto this process's GPU
        plan = construct_module_sharding_plan(collection, per_param_sharding={
            _FEATURE: row_wise()}, local_size=world, world_size=world, device_type=device.type,
            sharder=sharder)
        self.collection = shard(collection, plan=plan, env=ShardingEnv.from_process_group(
            self.group), device=device, sharder=sharder)
        # a state dict holds this process's rows as plain tensors (see state_entries)
        self.register_state_dict_post_hook(_save_local_rows)
        self.register_load_state_dict_pre_hook(_load_local_rows)

    def _local(self) -> Tuple[int, Tensor]:
        """``(first row, [n_p, D] rows)`` this process holds."""
        weight = self.collection.state_dict()[f'embeddings.{_FEATURE}.weight']
        shards = weight.local_shards()
        if not shards:
            return self.num_embeddings, torch.empty(0, self.embedding_dim)
        return int(shards[0].metadata.shard_offsets[0]), shards[0].tensor

    @property
    def row_range(self) -> Tuple[int, int]:
        """The rows ``[start, stop)`` this process holds."""
        start, rows = self._local()
        return start, start + rows.shape[0]

    def local_rows(self) -> Tensor:
        """The ``[stop - start, D]`` rows this process holds (its own storage)."""
        return self._local()[1]

    def forward(self, index: Optional[Tensor] = None) -> Tensor:
        r"""``[*index.shape, D]`` rows of the entities ``index``, wherever
        they are held (every process of the group must call it, each with
        its own ``index``)."""
        if index is None:
            raise ValueError("a sharded entity table is never gathered whole; ask for the rows "
                             "of given entities")
        from torchrec import KeyedJaggedTensor
        flat = index.reshape(-1).long()
        kjt = KeyedJaggedTensor.from_lengths_sync(
            keys=[_FEATURE], values=flat, lengths=torch.tensor([flat.numel()], device=flat.device))
        out = self.collection(kjt)
        out = out.wait() if hasattr(out, 'wait') else out
        rows = out[_FEATURE].values().reshape(*index.shape, self.embedding_dim)
        return rows if self.trains else rows.detach()

    def requires_grad_(self, requires_grad: bool = True) -> 'ShardedTable':
        """Whether lookups carry gradients (and so step the rows in the
        backward pass); ``False`` detaches them, e.g. while CoMAT's
        generator loss is built."""
        self.trains = bool(requires_grad)
        return self

    def row_mean_squares(self, *indices: Tensor) -> List[Tensor]:
        # one lookup for all indices: one all-to-all
        sizes = [i.numel() for i in indices]
        rows = self(torch.cat([i.reshape(-1) for i in indices])) if indices else None
        means = rows.pow(2).mean(dim=1).split(sizes) if rows is not None else []
        return [m.reshape(i.shape) for m, i in zip(means, indices)]

    @torch.no_grad()
    def initialize_(self, init_: Callable[[Tensor], Any]) -> None:
        """Every process draws the whole table from the global RNG,
        :data:`CHUNK_ROWS` rows at a time, and keeps its own rows: the same
        table on every process and for every number of processes, never
        more than a chunk in memory."""
        start, stop = self.row_range
        local = self.local_rows()
        for first in range(0, self.num_embeddings, CHUNK_ROWS):
            chunk = torch.empty(min(CHUNK_ROWS, self.num_embeddings - first), self.embedding_dim)
            init_(chunk)
            lo, hi = max(first, start), min(first + chunk.shape[0], stop)
            if lo < hi:
                local[lo - start:hi - start].copy_(chunk[lo - first:hi - first])

    @torch.no_grad()
    def copy_rows_(self, rows: Tensor) -> None:
        """Sets this process's rows from the whole table ``rows`` (``[N, D]``,
        e.g. memory-mapped from a consolidated checkpoint: only this
        process's rows are read); their :math:`G_e` is kept."""
        self.load_entries_({'weight': rows})

    def _accumulator(self) -> Tensor:
        """The fused row-wise Adagrad's ``[n_p]`` per-row :math:`G_e` of this
        process's rows (its own storage)."""
        state = self.collection.fused_optimizer.state_dict()['state']
        sums = state[f'embeddings.{_FEATURE}.weight'][f'{_FEATURE}.momentum1']
        return sums.local_shards()[0].tensor

    def local_state(self) -> Dict[str, Any]:
        """This process's part of the table for its own checkpoint: where
        its rows start and stop, the rows, and the fused row-wise Adagrad's
        per-row :math:`G_e` (a resumed step is the step it would have been)."""
        start, stop = self.row_range
        return {'num_embeddings': self.num_embeddings, 'embedding_dim': self.embedding_dim,
                'start': start, 'stop': stop, 'rows': self.local_rows().clone(),
                'accumulator': self._accumulator().clone()}

    @torch.no_grad()
    def load_local_state_(self, state: Dict[str, Any], source: str = 'the state') -> None:
        """Sets this process's rows and their :math:`G_e` from
        :meth:`local_state` of the same rows; another table or another
        split of it (a different number of processes) is a one-line
        :class:`ValueError` naming ``source``."""
        start, stop = self.row_range
        want = (self.num_embeddings, self.embedding_dim, start, stop)
        got = tuple(state.get(k) for k in ('num_embeddings', 'embedding_dim', 'start', 'stop'))
        if got != want:
            raise ValueError(f"{source}: rows {got[2]}:{got[3]} of a {got[0]} x {got[1]} table, "
                             f"but this process holds rows {start}:{stop} of {want[0]} x "
                             f"{want[1]} (resume with the same number of processes)")
        self.local_rows().copy_(state['rows'])
        self._accumulator().copy_(state['accumulator'])

    @torch.no_grad()
    def gathered_rows(self, dst: int = 0) -> Optional[Tensor]:
        """The whole ``[N, D]`` table on the process of rank ``dst`` (for a
        consolidated checkpoint, where it fits in that process's memory),
        :obj:`None` on the others; every process of the group calls it."""
        import torch.distributed as dist
        start, stop = self.row_range
        world = dist.get_world_size(self.group)
        width = -(-self.num_embeddings // world)  # the largest shard: row_wise's block
        local = self.local_rows()  # gathered on its device (NCCL: the GPU)
        padded = torch.zeros(width, self.embedding_dim, dtype=local.dtype, device=local.device)
        padded[:stop - start] = local
        bounds = torch.tensor([start, stop], device=local.device)
        rank = dist.get_rank(self.group)
        parts = [torch.empty_like(padded) for _ in range(world)] if rank == dst else None
        spans = [torch.empty_like(bounds) for _ in range(world)] if rank == dst else None
        global_dst = dst if self.group is dist.group.WORLD else \
            dist.get_global_rank(self.group, dst)
        dist.gather(padded, parts, dst=global_dst, group=self.group)
        dist.gather(bounds, spans, dst=global_dst, group=self.group)
        if rank != dst:
            return None
        out = torch.empty(self.num_embeddings, self.embedding_dim, dtype=padded.dtype)
        for part, span in zip(parts, spans):
            lo, hi = int(span[0]), int(span[1])
            out[lo:hi] = part[:hi - lo].cpu()
        return out

    def state_entries(self) -> Dict[str, Tensor]:
        """What the table adds to its model's ``state_dict`` (under the
        table's prefix), instead of TorchRec's sharded tensors: ``rows`` and
        ``accumulator`` (this process's, no copy) and ``row_range``
        (``[start, stop, N, D]``). Loading such entries of other rows is a
        one-line :class:`ValueError`; loading a whole table's ``weight``
        (``[N, D]``, e.g. a consolidated checkpoint's, with its
        ``accumulator`` ``[N]`` where kept) takes this process's rows of it."""
        start, stop = self.row_range
        return {'rows': self.local_rows().detach(), 'accumulator': self._accumulator(),
                'row_range': torch.tensor([start, stop, self.num_embeddings,
                                           self.embedding_dim])}

    def entries_of_whole(self, weight: Tensor, accumulator: Optional[Tensor] = None
                         ) -> Dict[str, Tensor]:
        """:meth:`state_entries` of this process's rows, cut from a whole
        table's ``weight`` (``[N, D]``, e.g. memory-mapped from a
        consolidated checkpoint: only these rows are read) and its
        ``accumulator`` (``[N]``; zeros, a fresh :math:`G_e`, where
        ``None``)."""
        if tuple(weight.shape) != (self.num_embeddings, self.embedding_dim):
            raise ValueError(f"rows of shape {list(weight.shape)} for a table of "
                             f"{self.num_embeddings} rows of size {self.embedding_dim}")
        start, stop = self.row_range
        return {'rows': weight[start:stop].clone(),
                'accumulator': (accumulator[start:stop].clone() if accumulator is not None
                                else torch.zeros(stop - start)),
                'row_range': torch.tensor([start, stop, *weight.shape])}

    @torch.no_grad()
    def load_entries_(self, entries: Dict[str, Tensor], source: str = 'the state dict') -> None:
        """Sets this process's rows (and :math:`G_e`) from
        :meth:`state_entries` of the same rows, or from a whole table's
        ``weight`` (and ``accumulator``; without one, :math:`G_e` is kept)."""
        if 'row_range' not in entries:
            whole = self.entries_of_whole(entries['weight'], entries.get('accumulator'))
            if entries.get('accumulator') is None:
                whole['accumulator'] = self._accumulator()
            entries = whole
        got = [int(v) for v in entries['row_range'].tolist()]
        self.load_local_state_({'num_embeddings': got[2], 'embedding_dim': got[3],
                                'start': got[0], 'stop': got[1], 'rows': entries['rows'],
                                'accumulator': entries['accumulator']}, source)

    def extended(self, rows: int, init_: Callable[[Tensor], Any], seed: int
                 ) -> 'StructuralTable':
        raise NotImplementedError("entities are added to a sharded table's consolidated "
                                  "checkpoint, on one machine")

    def __repr__(self) -> str:
        start, stop = self.row_range
        return (f'{self.__class__.__name__}({self.num_embeddings}, {self.embedding_dim}, '
                f'rows {start}:{stop} here, row-wise Adagrad lr={self.lr})')


#: the entries :meth:`ShardedTable.state_entries` adds, and a whole table's
ENTRY_NAMES = ('rows', 'accumulator', 'row_range')


def _save_local_rows(table: ShardedTable, state: Dict[str, Any], prefix: str,
                     local_metadata: Any) -> None:
    for key in [k for k in state if k.startswith(prefix + 'collection.')]:
        del state[key]
    state.update({prefix + k: v for k, v in table.state_entries().items()})


def _load_local_rows(table: ShardedTable, state: Dict[str, Any], prefix: str,
                     local_metadata: Any, strict: bool, missing_keys: List[str],
                     unexpected_keys: List[str], error_msgs: List[str]) -> None:
    names = ENTRY_NAMES + ('weight',)
    entries = {k: state.pop(prefix + k) for k in names if prefix + k in state}
    if 'row_range' in entries or 'weight' in entries:
        table.load_entries_(entries, 'the checkpoint')
    else:
        missing_keys.append(prefix + 'rows')
    # TorchRec's own entries: the tensors just set, loaded onto themselves
    state.update(table.collection.state_dict(prefix=prefix + 'collection.'))
