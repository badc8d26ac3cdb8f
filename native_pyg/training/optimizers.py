"""Optimisers for large entity tables: row-wise Adagrad and a table/dense split.

With millions of entities, :class:`torch.optim.Adam` over the structural
table keeps two dense moments of the table's size and touches every row
each step. A table with sparse gradients (a
:class:`~native_pyg.nn.structural_table.RowSparseTable`, or any
``sparse=True`` :class:`torch.nn.Embedding`) is updated lazily by
:class:`torch.optim.SparseAdam` (two moments, touched rows only) or
:class:`RowWiseAdagrad` (one scalar per row); every other parameter stays
with :class:`torch.optim.Adam`, fused where PyTorch has the fused kernel
for the parameters' device (:func:`dense_adam`)."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional

import torch
from torch import Tensor

from native_pyg.config.rules import TABLE_OPTIMIZERS
from native_pyg.nn.structural_table import StructuralTable

#: Accepted ``table_optimizer`` names of :func:`build_optimizer`.

#: Devices with PyTorch's fused Adam kernel.
FUSED_ADAM_DEVICES = ('cpu', 'cuda')


def dense_adam(params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    r""":class:`torch.optim.Adam` over ``params``, with ``fused=True`` when
    every parameter is a floating tensor on a device of
    :obj:`FUSED_ADAM_DEVICES`. The update is Adam's,

    .. math::
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad
        \theta \leftarrow \theta - \eta \frac{m / (1 - \beta_1^t)}
        {\sqrt{v / (1 - \beta_2^t)} + \epsilon},

    computed in one pass per tensor: the unfused CPU step builds two
    temporaries of each parameter's size (:math:`\sqrt{v}` and its scaled
    copy), for an R-GCN's relation weights hundreds of megabytes drawn from
    the heap and freed again at every step. The two differ by float rounding
    only (the last bits of :math:`\theta`).
    A state loaded by :meth:`~torch.optim.Optimizer.load_state_dict` brings
    its own ``fused`` setting, so a resumed run steps as it was saved."""
    params = list(params)
    fused = bool(params) and all(
        p.is_floating_point() and p.device.type in FUSED_ADAM_DEVICES for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


class RowWiseAdagrad(torch.optim.Optimizer):
    r"""Row-wise Adagrad, as PyTorch-BigGraph trains its embedding tables: a
    parameter :math:`\mathbf{W} \in \mathbb{R}^{N \times D}` keeps one
    accumulator :math:`G_i` per row, and a step with gradient rows
    :math:`\mathbf{g}_i` does

    .. math::
        G_i \leftarrow G_i + \frac{1}{D} \sum_{j=1}^{D} g_{ij}^2, \qquad
        \mathbf{w}_i \leftarrow \mathbf{w}_i - \eta \,
        \frac{\mathbf{g}_i}{\sqrt{G_i} + \epsilon}

    so its state is :math:`N` numbers instead of Adam's :math:`2ND`.
    Sparse gradients (:obj:`torch.sparse_coo`, as from a ``sparse=True``
    :class:`torch.nn.Embedding`) update only the rows they hold, state and
    weights; a dense gradient counts every row as touched. Parameters with
    more than two dimensions average over all but the first; 1-D parameters
    get one accumulator per element (plain Adagrad).

    Args:
        params (iterable): Parameters or parameter groups.
        lr (float, optional): Learning rate :math:`\eta`. (default: :obj:`1e-2`)
        eps (float, optional): :math:`\epsilon` added to :math:`\sqrt{G_i}`.
            (default: :obj:`1e-10`)
        initial_accumulator_value (float, optional): Starting value of
            :math:`G_i`. (default: :obj:`0.0`)
    """
    def __init__(self, params: Iterable, lr: float = 1e-2, eps: float = 1e-10,
                 initial_accumulator_value: float = 0.0):
        if not lr >= 0.0:
            raise ValueError(f"RowWiseAdagrad needs lr >= 0 (got {lr})")
        if not eps >= 0.0:
            raise ValueError(f"RowWiseAdagrad needs eps >= 0 (got {eps})")
        if not initial_accumulator_value >= 0.0:
            raise ValueError(f"RowWiseAdagrad needs initial_accumulator_value >= 0 "
                             f"(got {initial_accumulator_value})")
        super().__init__(params, dict(lr=lr, eps=eps,
                                      initial_accumulator_value=initial_accumulator_value))
        for group in self.param_groups:
            for p in group['params']:
                self._accumulator(p, group)

    def _accumulator(self, p: Tensor, group: Dict[str, Any]) -> Tensor:
        state = self.state[p]
        if 'sum' not in state:  # also for groups added after construction
            shape = p.shape[:1] if p.dim() > 1 else p.shape
            state['sum'] = torch.full(shape, group['initial_accumulator_value'],
                                      dtype=p.dtype, device=p.device)
        return state['sum']

    @staticmethod
    def _row_mean_sq(g: Tensor) -> Tensor:
        return g.pow(2).flatten(1).mean(1) if g.dim() > 1 else g.pow(2)

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Tensor]] = None) -> Optional[Tensor]:
        loss = _closure_loss(closure)
        for group in self.param_groups:
            lr, eps = group['lr'], group['eps']
            for p in group['params']:
                if p.grad is None:
                    continue
                acc = self._accumulator(p, group)
                if p.grad.is_sparse:
                    grad = p.grad.coalesce()
                    if grad.sparse_dim() != 1:
                        raise ValueError("RowWiseAdagrad takes sparse gradients over rows only "
                                         f"(got sparse_dim {grad.sparse_dim()})")
                    rows, values = grad.indices()[0], grad.values()
                    acc.index_add_(0, rows, self._row_mean_sq(values))
                    std = acc.index_select(0, rows).sqrt_().add_(eps)
                    std = std.view(-1, *[1] * (values.dim() - 1))
                    p.index_add_(0, rows, values.div(std).mul_(-lr))
                else:
                    grad = p.grad
                    acc.add_(self._row_mean_sq(grad))
                    std = acc.sqrt().add_(eps)
                    std = std.view(-1, *[1] * (grad.dim() - 1)) if grad.dim() > 1 else std
                    p.addcdiv_(grad, std, value=-lr)
        return loss


class SplitOptimizer:
    """One optimiser made of two: ``table`` steps the (sparse) embedding
    tables, ``dense`` (:class:`torch.optim.Adam`, or :obj:`None` when the
    tables are the only parameters) steps the rest. It offers the optimiser
    calls a trainer makes: :meth:`zero_grad`, :meth:`step`,
    :meth:`state_dict`, :meth:`load_state_dict` and :attr:`param_groups`
    (both optimisers' groups, so setting ``group['lr']`` reaches both)."""
    def __init__(self, table: torch.optim.Optimizer,
                 dense: Optional[torch.optim.Optimizer] = None):
        self.table, self.dense = table, dense

    @property
    def optimizers(self) -> List[torch.optim.Optimizer]:
        return [opt for opt in (self.table, self.dense) if opt is not None]

    @property
    def param_groups(self) -> List[Dict[str, Any]]:
        return [group for opt in self.optimizers for group in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Tensor]] = None) -> Optional[Tensor]:
        loss = _closure_loss(closure)
        for opt in self.optimizers:
            opt.step()
        return loss

    def state_dict(self) -> Dict[str, Any]:
        return {'table': self.table.state_dict(),
                'dense': self.dense.state_dict() if self.dense is not None else None}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        if set(state_dict) != {'table', 'dense'} or \
                (state_dict['dense'] is None) != (self.dense is None):
            raise ValueError("optimizer state does not match this table/dense split "
                             "(was training.table_optimizer changed since it was saved?)")
        self.table.load_state_dict(state_dict['table'])
        if self.dense is not None:
            self.dense.load_state_dict(state_dict['dense'])

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(table={type(self.table).__name__}, '
                f'dense={type(self.dense).__name__ if self.dense is not None else None})')


def sparse_tables(model: torch.nn.Module) -> List[torch.nn.Parameter]:
    """The parameters a row-wise optimiser steps in ``model``, each once: the
    :meth:`~native_pyg.nn.structural_table.StructuralTable.sparse_parameters`
    of every structural table and the weight of every ``sparse=True``
    :class:`torch.nn.Embedding`."""
    seen, out = set(), []
    for module in model.modules():
        if isinstance(module, StructuralTable):
            params = module.sparse_parameters()
        else:
            params = [module.weight] if isinstance(module, torch.nn.Embedding) \
                and module.sparse else []
        for p in params:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def fused_parameters(model: torch.nn.Module) -> List[str]:
    """The names of the parameters of ``model`` that a table with a fused
    optimiser (:attr:`~native_pyg.nn.structural_table.StructuralTable.fused`)
    updates itself: no optimiser of the trainer steps them, and
    :func:`~native_pyg.training.distributed.wrap` leaves them out of DDP."""
    fused = {id(p) for m in model.modules() if isinstance(m, StructuralTable) and m.fused
             for p in m.parameters()}
    return [name for name, p in model.named_parameters() if id(p) in fused]


def build_optimizer(model: torch.nn.Module, lr: float, table_optimizer: str = 'adam',
                    table_params: Optional[Iterable[torch.nn.Parameter]] = None,
                    table_lr: Optional[float] = None):
    """The training optimiser of ``model``. ``'adam'`` is plain
    :class:`torch.optim.Adam` over every parameter; ``'sparse_adam'`` and
    ``'rowwise_adagrad'`` give a :class:`SplitOptimizer` with
    :class:`torch.optim.SparseAdam` or :class:`RowWiseAdagrad` on the tables
    and :class:`torch.optim.Adam` on the rest, all at learning rate ``lr``
    (the tables' at ``table_lr`` where given); every :class:`torch.optim.Adam`
    is fused where it can be (:func:`dense_adam`).

    Args:
        model (torch.nn.Module): The model to train.
        lr (float): Learning rate.
        table_optimizer (str, optional): One of :obj:`TABLE_OPTIMIZERS`.
            (default: :obj:`'adam'`)
        table_params (iterable, optional): The table parameters.
            (default: :obj:`None`, :func:`sparse_tables`)
        table_lr (float, optional): The row-wise optimiser's learning rate.
            (default: :obj:`None`, ``lr``)
    """
    if table_optimizer not in TABLE_OPTIMIZERS:
        raise ValueError(f"unknown table optimizer {table_optimizer!r}; "
                         f"choose one of {', '.join(TABLE_OPTIMIZERS)}")
    fused = set(fused_parameters(model))
    own = [p for name, p in model.named_parameters() if name not in fused]
    if table_optimizer == 'adam':
        return dense_adam(own if fused else model.parameters(), lr)
    tables = sparse_tables(model) if table_params is None else list(table_params)
    if not tables and fused:  # the table steps itself: Adam on the rest
        return dense_adam(own, lr)
    if not tables:
        raise ValueError(f"table optimizer {table_optimizer!r} needs a sparse entity table "
                         "(NativE(sparse=True) or a torch.nn.Embedding with sparse=True), "
                         "but the model has none")
    ids = {id(p) for p in tables}
    rest = [p for p in own if id(p) not in ids]
    row_lr = lr if table_lr is None else table_lr
    table = (torch.optim.SparseAdam(tables, lr=row_lr) if table_optimizer == 'sparse_adam'
             else RowWiseAdagrad(tables, lr=row_lr))
    return SplitOptimizer(table, dense_adam(rest, lr) if rest else None)


def set_learning_rates(optimizer: Optional[torch.optim.Optimizer], lr: float,
                       table_lr: Optional[float] = None) -> None:
    """Sets every learning rate of ``optimizer`` to ``lr``, those of a
    :class:`SplitOptimizer`'s tables to ``table_lr`` where given."""
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        group['lr'] = lr
    if table_lr is not None and isinstance(optimizer, SplitOptimizer):
        for group in optimizer.table.param_groups:
            group['lr'] = table_lr


def _closure_loss(closure: Optional[Callable[[], Tensor]]) -> Optional[Tensor]:
    """The loss of an optimiser step's ``closure`` (with gradients on), if any."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()
