r"""What one training step computes once and reuses, with gradient: the
structural encoder's output over the training graph, and the modality
embeddings of the entities the step's first call embedded.

A step's KGC loss embeds every distinct entity of its positives and
negatives; CoMAT's critic terms then ask again for those of the positives.
Inside :meth:`NativE.step_embeddings
<native_pyg.nn.NativE.step_embeddings>` the second call gathers rows of the
first instead of projecting raw features (and running a GNN encoder over
the whole graph) a second time. The loss is the same function of the
parameters, so its gradient is the same; only the order of floating-point
sums differs. Leave the context whenever parameters change."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from native_pyg.nn.embedding_cache import EmbeddingCache, Rows


class StepEmbeddings(EmbeddingCache):
    r"""The cache of :meth:`NativE.step_embeddings
    <native_pyg.nn.NativE.step_embeddings>`: values under keys (the
    :class:`~native_pyg.nn.embedding_cache.EmbeddingCache` protocol, computed
    *with* gradient), and the rows ``(emb [U, |M|, De], mask [U, |M|])`` of
    the largest set of entities embedded so far.

    Args:
        version (int): The entity inputs' version the values belong to.
    """

    with_gradient = True

    def __init__(self, version: int):
        super().__init__(version)
        self._ids: Optional[Tensor] = None
        self._rows: Optional[Rows] = None

    def clear(self) -> None:
        super().clear()
        self._ids = self._rows = None

    def rows(self, ids: Tensor, compute: Callable[[Tensor], Rows]) -> Rows:
        """``compute(ids)`` for sorted distinct entity ``ids``, or its rows
        gathered from an earlier call's result that covers them all."""
        if self._ids is not None and ids.numel() <= self._ids.numel():
            pos = torch.searchsorted(self._ids, ids).clamp_(max=self._ids.numel() - 1)
            if bool((self._ids[pos] == ids).all()):
                emb, mask = self._rows
                return emb[pos], mask[pos]
        out = compute(ids)
        # rows computed without gradient (e.g. under no_grad) would detach later calls
        if torch.is_grad_enabled() and (self._ids is None or ids.numel() > self._ids.numel()):
            self._ids, self._rows = ids, out
        return out

    def __repr__(self) -> str:
        held = 0 if self._ids is None else self._ids.numel()
        return f'{self.__class__.__name__}(entities={held}, keys={sorted(self._store)})'
