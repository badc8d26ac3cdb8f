r"""The structural table: one learned row per entity, behind one small
interface, so that where the rows live and how they are updated is the
table's business and not the model's.

:class:`StructuralTable` is the interface (look rows up, the parameters a
row-wise optimiser steps, per-row mean squares for the L2 regulariser,
initialise, grow); :class:`DenseTable` and :class:`RowSparseTable` are its
implementations on one process, and
:class:`~native_pyg.nn.sharded_table.ShardedTable` the one sharded over
processes, plugged in with ``NativE(table=...)``."""
from __future__ import annotations

from typing import Any, Callable, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor


class StructuralTable(torch.nn.Module):
    r"""The entity table :math:`\mathbf{E} \in \mathbb{R}^{N \times D}` of a
    :class:`~native_pyg.nn.NativE`: row :math:`\mathbf{E}_e` is entity
    :math:`e`'s structural embedding (or the structural encoder's input).

    An implementation overrides :meth:`forward`, :meth:`row_mean_squares`,
    :meth:`initialize_` and :meth:`extended`; a table whose gradients are
    row-sparse also sets :attr:`sparse` and returns its parameters from
    :meth:`sparse_parameters`, which a row-wise optimiser steps
    (``training.table_optimizer``) while Adam steps everything else.

    Args:
        num_embeddings (int): Number of rows :math:`N`.
        embedding_dim (int): Row size :math:`D`.
    """

    #: whether gradients are row-sparse (only the rows a step read are updated)
    sparse: bool = False
    #: whether the table updates its own rows in the backward pass (a fused
    #: optimiser, e.g. a sharded table's): no optimiser of the trainer steps
    #: its parameters and data parallelism leaves them alone
    fused: bool = False
    #: whether each process holds only some rows (:attr:`row_range`)
    sharded: bool = False

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)

    def forward(self, index: Optional[Tensor] = None) -> Tensor:
        r"""``[*index.shape, D]`` rows of the entities ``index`` (``None``:
        all :math:`N` rows, without a copy where the table can)."""
        raise NotImplementedError

    def row_mean_squares(self, *indices: Tensor) -> List[Tensor]:
        r"""Per index tensor, the mean over :math:`D` of the squares of its
        rows, :math:`\frac{1}{D}\sum_j E_{ej}^2` (``[*index.shape]``), with
        the gradient :attr:`sparse` promises."""
        raise NotImplementedError

    def sparse_parameters(self) -> List[torch.nn.Parameter]:
        """The parameters a row-wise optimiser steps from sparse gradients
        (none: the table is stepped with the model's other parameters)."""
        return []

    def initialize_(self, init_: Callable[[Tensor], Any]) -> None:
        """Sets every row in place with ``init_`` (e.g. a scorer's
        ``init_entity_``), drawing from the current global RNG."""
        raise NotImplementedError

    def extended(self, rows: int, init_: Callable[[Tensor], Any], seed: int
                 ) -> 'StructuralTable':
        """A table of the same kind with ``rows`` more rows, the new ones set
        by ``init_`` from ``seed`` (the same table, the same new rows)."""
        raise NotImplementedError

    def checked(self, rows: int, dim: int) -> 'StructuralTable':
        """``self``, after checking it has ``rows`` rows of size ``dim``."""
        if (self.num_embeddings, self.embedding_dim) != (rows, dim):
            raise ValueError(f"the entity table has {self.num_embeddings} rows of size "
                             f"{self.embedding_dim}; the model needs {rows} of size {dim}")
        return self

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.num_embeddings}, {self.embedding_dim})'


class DenseTable(StructuralTable):
    r"""The table as one ``[N, D]`` parameter :attr:`weight` (the state-dict
    entry ``weight``, as :class:`torch.nn.Embedding` keeps it), looked up by
    :func:`torch.nn.functional.embedding` and updated densely, by Adam with
    the model's other parameters.

    Args:
        num_embeddings (int): Number of rows :math:`N`.
        embedding_dim (int): Row size :math:`D`.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__(num_embeddings, embedding_dim)
        self.weight = torch.nn.Parameter(torch.empty(self.num_embeddings, self.embedding_dim))
        # drawn as torch.nn.Embedding draws it: a caller's later draws stay where they were
        torch.nn.init.normal_(self.weight)

    @property
    def device(self) -> torch.device:
        return self.weight.device

    def forward(self, index: Optional[Tensor] = None) -> Tensor:
        if index is None:
            return self.weight
        return F.embedding(index, self.weight, sparse=self.sparse)

    def row_mean_squares(self, *indices: Tensor) -> List[Tensor]:
        # per-row means once, then gathered: no [rows, D] copies
        squares = self.weight.pow(2).mean(dim=1)
        return [squares[index] for index in indices]

    def initialize_(self, init_: Callable[[Tensor], Any]) -> None:
        init_(self.weight.data)

    def extended(self, rows: int, init_: Callable[[Tensor], Any], seed: int) -> 'DenseTable':
        new_rows = torch.empty(rows, self.embedding_dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            init_(new_rows)
        out = type(self)(self.num_embeddings + rows, self.embedding_dim).to(self.weight)
        with torch.no_grad():
            out.weight.copy_(torch.cat([self.weight.detach(), new_rows.to(self.weight)]))
        return out


class RowSparseTable(DenseTable):
    r"""A :class:`DenseTable` whose gradients are sparse: a step's gradient
    holds only the rows it read, and a row-wise optimiser
    (:class:`torch.optim.SparseAdam`,
    :class:`~native_pyg.training.optimizers.RowWiseAdagrad`) updates only
    those rows and their state.

    Args:
        num_embeddings (int): Number of rows :math:`N`.
        embedding_dim (int): Row size :math:`D`.
    """

    sparse = True

    def row_mean_squares(self, *indices: Tensor) -> List[Tensor]:
        # gathered rows first: a sparse gradient
        return [self(index).pow(2).mean(dim=1) for index in indices]

    def sparse_parameters(self) -> List[torch.nn.Parameter]:
        return [self.weight]


def make_table(num_embeddings: int, embedding_dim: int, sparse: bool = False) -> StructuralTable:
    """A :class:`RowSparseTable` (``sparse``) or a :class:`DenseTable`."""
    return (RowSparseTable if sparse else DenseTable)(num_embeddings, embedding_dim)
