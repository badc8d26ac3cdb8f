r"""The caches a :class:`~native_pyg.nn.NativE` reads its entity embeddings
through, as contexts: :meth:`EntityCaches.cached_entities` for evaluation
(all entities, computed once without gradient;
:class:`~native_pyg.nn.candidates.CandidateCache`) and
:meth:`EntityCaches.step_embeddings` for one training step (with gradient;
:class:`~native_pyg.nn.step_embeddings.StepEmbeddings`). Both implement
:class:`~native_pyg.nn.embedding_cache.EmbeddingCache`; the model reads
``self._cache`` (``None`` outside both) through that protocol only, and
clears it when its parameters are reset."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from torch import Tensor

from native_pyg.nn.candidates import CandidateCache
from native_pyg.nn.embedding_cache import EmbeddingCache
from native_pyg.nn.step_embeddings import StepEmbeddings


class EntityCaches:
    """The cache contexts of a model with entity inputs ``self.inputs`` (a
    ``version`` that changes with them)."""

    _cache: Optional[EmbeddingCache] = None

    @contextmanager
    def cached_entities(self, structure: Optional[Tensor] = None) -> Iterator['EntityCaches']:
        r"""Context for evaluation: the structural (or given ``structure``,
        e.g. by :func:`~native_pyg.nn.layerwise_structural_embeddings`, a
        tensor or :class:`~native_pyg.nn.layerwise.LayerRows` on disk) and
        modality embeddings of all entities are computed once (no gradient)
        and reused inside, as are the fused candidates of the last relation.
        Leave the context (or do not use it) whenever parameters change."""
        with self._caching(CandidateCache(self.inputs.version, structure)):
            yield self

    @property
    def entities_cached(self) -> bool:
        """Whether a :meth:`cached_entities` context is active."""
        return self._candidates is not None

    @contextmanager
    def step_embeddings(self) -> Iterator['EntityCaches']:
        r"""Context for one step's loss, inside its :meth:`subgraph` and
        :meth:`hidden_structure`: the modality embeddings of the largest set of
        entities embedded so far are kept *with* gradient, and calls for entities
        among them gather their rows (``nn/step_embeddings.py``); leave it
        before parameters change."""
        with self._caching(StepEmbeddings(self.inputs.version)):
            yield self

    @property
    def _candidates(self) -> Optional[EmbeddingCache]:
        """The active cache where 1-vs-all scoring may reuse it (a step's may not)."""
        cache = self._cache
        return cache if cache is not None and cache.serves_one_vs_all else None

    @contextmanager
    def _caching(self, cache: EmbeddingCache) -> Iterator[None]:
        previous, self._cache = self._cache, cache
        try:
            yield
        finally:
            self._cache = previous
