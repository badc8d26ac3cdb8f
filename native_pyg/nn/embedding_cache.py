r"""The one protocol of the caches a :class:`~native_pyg.nn.NativE` reads
its entity embeddings through: values kept under keys for one version of
the entity inputs, and the modality embeddings of a set of entities.

Its two implementations are evaluation's
:class:`~native_pyg.nn.candidates.CandidateCache` (all entities, without
gradient, reused by 1-vs-all scoring) and a training step's
:class:`~native_pyg.nn.step_embeddings.StepEmbeddings` (with gradient). The
model asks every cache the same questions and never which kind it holds."""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

Rows = Tuple[Tensor, Tensor]


class EmbeddingCache:
    r"""Values under keys, dropped when the entity inputs' ``version``
    changes or :meth:`clear` is called (parameters changed).

    A value is computed by :meth:`get` (or :meth:`get_last`, which keeps
    one per key: the last tag's) the first time it is asked for, without
    gradient unless :attr:`with_gradient`. :meth:`rows` gives the modality
    embeddings of some entities (here: computed each time; a cache may
    gather them from rows it keeps). :attr:`serves_one_vs_all` says whether
    1-vs-all scoring may reuse it.

    Args:
        version (int, optional): The entity inputs' version the values
            belong to. (default: :obj:`None`)
    """

    #: values are computed with gradient (a training step's) or without
    with_gradient: bool = False
    #: 1-vs-all scoring may reuse what is kept here (all entities, no gradient)
    serves_one_vs_all: bool = False

    def __init__(self, version: Optional[int] = None):
        self._store: Dict[str, object] = {}
        self._version = version

    def clear(self) -> None:
        """Drops every value kept."""
        self._store.clear()

    def _check(self, version: int) -> None:
        if version != self._version:
            self.clear()
            self._version = version

    def _compute(self, compute: Callable[[], object]) -> object:
        if self.with_gradient:
            return compute()
        with torch.no_grad():
            return compute()

    def get(self, key: str, version: int, compute: Callable[[], object]) -> object:
        """The value kept under ``key``, computed if absent."""
        self._check(version)
        if key not in self._store:
            self._store[key] = self._compute(compute)
        return self._store[key]

    def get_last(self, key: str, tag: object, version: int,
                 compute: Callable[[], object]) -> object:
        """Like :meth:`get`, keeping one value per ``key``: the last ``tag``'s."""
        self._check(version)
        if key not in self._store or self._store[f'{key}:tag'] != tag:
            self._store[key] = self._compute(compute)
            self._store[f'{key}:tag'] = tag
        return self._store[key]

    def rows(self, ids: Tensor, compute: Callable[[Tensor], Rows]) -> Rows:
        """``compute(ids)``: the modality embeddings ``(emb, mask)`` of sorted
        distinct entity ``ids``."""
        return compute(ids)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({sorted(k for k in self._store if ":" not in k)})'


def cached_value(cache: Optional[EmbeddingCache], key: str, version: int,
                 compute: Callable[[], object]) -> object:
    """``cache.get(key, version, compute)``, or ``compute()`` without a cache."""
    return compute() if cache is None else cache.get(key, version, compute)


def entity_rows(cache: Optional[EmbeddingCache], ids: Tensor,
                compute: Callable[[Tensor], Rows]) -> Rows:
    """``cache.rows(ids, compute)``, or ``compute(ids)`` without a cache."""
    return compute(ids) if cache is None else cache.rows(ids, compute)
