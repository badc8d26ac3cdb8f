r"""The ranking base every evaluation protocol shares
(:class:`RankingEvaluator`): the known-triple filter, the grouping of
queries into chunks of one relation, the checks of arguments, triples and
model, the metrics per direction, relation category and entity group, and
the entry point :meth:`~RankingEvaluator.evaluate` with query subsampling
and confidence intervals.

A protocol is a subclass that overrides :meth:`RankingEvaluator._rank_triples`
(how the filtered and raw ranks of checked triples are computed) and, where
it differs, :attr:`~RankingEvaluator.protocol`,
:attr:`~RankingEvaluator.model_api` and the hooks that describe it. Every
protocol ranks inside :func:`eval_mode`: eval mode, no gradient and the
evaluation's :class:`~native_pyg.kernels.runtime.Runtime`.
"""
from __future__ import annotations

import contextlib
import itertools
from abc import ABC, abstractmethod
from typing import Any, ContextManager, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from native_pyg.data.relations import CATEGORIES, relation_categories
from native_pyg.data.schema import ENTITY, SPLITS, seen_entities, split_triples
from native_pyg.evaluation.known_triples import KnownTripleFilter
from native_pyg.evaluation.metrics import link_prediction_metrics
from native_pyg.evaluation.query_subsets import evaluate_sample
from native_pyg.evaluation.ranks import check_ties
from native_pyg.kernels.runtime import Runtime
from native_pyg.nn.modes import evaluating

__all__ = ['RankingEvaluator', 'eval_mode', 'model_device']


def model_device(model: Any) -> torch.device:
    """The device of the model's first parameter or buffer, else CPU."""
    tensors = itertools.chain(
        model.parameters() if hasattr(model, 'parameters') else (),
        model.buffers() if hasattr(model, 'buffers') else ())
    first = next(tensors, None)
    return first.device if first is not None else torch.device('cpu')


@contextlib.contextmanager
def eval_mode(model: Any, compile: bool) -> Iterator[None]:
    """Eval mode, no gradient and the evaluation's :class:`~native_pyg.kernels.runtime.Runtime`
    (fp32, PyTorch's products, compiled distances if ``compile``) for the
    duration; training mode restored."""
    with evaluating(model), torch.no_grad(), Runtime(compile=compile):
        yield


class RankingEvaluator(ABC):
    r"""Filtered rank-based link prediction: every test triple :math:`(h, r, t)`
    asks a tail query :math:`(h, r, ?)` and a head query :math:`(?, r, t)`,
    each ranking its target among candidate entities; how the candidates are
    chosen and scored is the protocol's (:meth:`_rank_triples`).

    Filtered ranks remove every other known true answer (all triples in
    ``known_triples``, normally the union of train, valid and test) from the
    candidates; the target itself is always ranked. Raw (unfiltered) ranks are
    reported next to them. Ties follow ``ties`` (see
    :func:`~native_pyg.evaluation.rank_from_scores`): the default
    ``'realistic'`` rank is the mean of the optimistic and pessimistic ranks;
    ``'optimistic'`` (only strictly better candidates count) matches the rule
    behind most published tables.

    Queries are grouped by relation and then split into chunks of at most
    ``batch_size`` queries (:meth:`_chunks`), so every call to the model has
    a single relation (a model with relation-dependent entity embeddings
    computes them once per call). Duplicate evaluated triples each count.
    The model runs in eval mode under :func:`torch.no_grad` and the
    evaluation's runtime (:func:`eval_mode`; its training mode is restored
    afterwards) on the device of its first parameter or buffer.

    Args:
        num_entities (int): Number of entities :math:`N`.
        known_triples (torch.Tensor): ``[E, 3]`` ``(head, relation, tail)``
            rows of every known true triple (for filtering).
        relation_category (Sequence[str], optional): The category of each
            relation id, one of ``'1-1'``, ``'1-N'``, ``'N-1'``, ``'N-N'``, for
            per-category metrics. (default: :obj:`None`)
        ties (str): Tie rule: ``'realistic'``, ``'optimistic'`` or
            ``'pessimistic'``. (default: :obj:`'realistic'`)
        batch_size (int): Queries per model call. (default: :obj:`256`)
        hits (Sequence[int]): Hits@k cut-offs. (default: ``(1, 3, 10)``)
        progress (bool): Show a progress bar. (default: :obj:`False`)
        compile (bool): On a CPU, compute RotatE's distances with a
            :func:`torch.compile`-generated kernel (see
            :class:`~native_pyg.kernels.runtime.Runtime`).
            (default: :obj:`False`)
        seen_entities (torch.Tensor, optional): ``[N]`` bool, the entities
            that occur in a training triple; metrics are then also reported
            per entity group: ``'seen'`` (head and tail seen) and
            ``'unseen'`` (the triple touches an unseen entity).
            (default: :obj:`None`)
    """
    #: the protocol's name, as results record it (a value of
    #: :class:`~native_pyg.evaluation.protocols.Protocol`)
    protocol: str = ''
    #: the model attributes the protocol uses, checked by :meth:`check_model`
    model_api: Tuple[str, ...] = ()
    #: the settings :meth:`__repr__` shows, in order (``num_known``: the filter's)
    _repr_keys: Tuple[str, ...] = ('num_entities', 'num_known', 'ties', 'batch_size')
    #: whether every process of a group ranks every query (its candidates are its own),
    #: instead of a share of the queries against all candidates
    ranks_every_query: bool = False

    def __init__(
        self,
        num_entities: int,
        known_triples: Tensor,
        relation_category: Optional[Sequence[str]] = None,
        ties: str = 'realistic',
        batch_size: int = 256,
        hits: Sequence[int] = (1, 3, 10),
        progress: bool = False,
        compile: bool = False,
        seen_entities: Optional[Tensor] = None,
    ):
        if num_entities <= 0:
            raise ValueError(f"num_entities must be positive, got {num_entities}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.num_entities = int(num_entities)
        self.filter = KnownTripleFilter(known_triples, self.num_entities)
        self.ties = check_ties(ties)
        self.batch_size = int(batch_size)
        self.hits = tuple(int(k) for k in hits)
        self.progress = progress
        self.compile = bool(compile)
        self.seen_entities = None
        if seen_entities is not None:
            seen = torch.as_tensor(seen_entities).bool().cpu()
            if seen.shape != (self.num_entities,):
                raise ValueError(f"seen_entities must have shape [{self.num_entities}], "
                                 f"got {tuple(seen.shape)}")
            self.seen_entities = seen
        self.relation_category = None
        if relation_category is not None:
            bad = sorted({c for c in relation_category if c not in CATEGORIES})
            if bad:
                raise ValueError(f"unknown relation categories {bad}; expected {CATEGORIES}")
            self.relation_category = list(relation_category)

    @classmethod
    def from_data(cls, data, split_known: Sequence[str] = ('train', 'valid', 'test'),
                  **kwargs) -> 'RankingEvaluator':
        """An evaluator for an MMKG :class:`~torch_geometric.data.HeteroData`:
        known triples from the ``split_known`` splits, relation categories
        (unless given in ``kwargs``) from all of its triples, seen entities
        from its training triples."""
        known = torch.cat([split_triples(data, s) for s in split_known], dim=0)
        kwargs.setdefault('seen_entities', seen_entities(data))
        if 'relation_category' not in kwargs:
            every = torch.cat([split_triples(data, s) for s in SPLITS], dim=0)
            kwargs['relation_category'] = relation_categories(every, data.num_relations)
        return cls(data[ENTITY].num_nodes, known, **kwargs)

    # --- checks and query chunks ---------------------------------------------------

    def _check_triples(self, triples: Tensor) -> Tensor:
        triples = torch.as_tensor(triples)
        if triples.dim() != 2 or triples.size(1) != 3:
            raise ValueError(f"triples must have shape [E, 3] (head, relation, tail), "
                             f"got {tuple(triples.shape)}")
        if triples.size(0) == 0:
            raise ValueError("no triples to evaluate")
        triples = triples.long()
        ent = triples[:, [0, 2]]
        if int(ent.min()) < 0 or int(ent.max()) >= self.num_entities:
            raise ValueError(f"triples hold entity ids outside [0, {self.num_entities})")
        if int(triples[:, 1].min()) < 0:
            raise ValueError("triples hold negative relation ids")
        return triples

    def check_model(self, model: Any) -> None:
        """Raises ``TypeError`` if ``model`` lacks an attribute of
        :attr:`model_api`."""
        if [n for n in self.model_api if not hasattr(model, n)]:
            raise TypeError(f"{type(model).__name__} lacks the NativE API "
                            f"{list(self.model_api)} the streamed and sampled evaluators need "
                            f"(LinkPredictionEvaluator only needs score_tails and score_heads)")

    def _chunks(self, rel_type: Tensor) -> List[Tensor]:
        """Index chunks of at most ``batch_size`` queries, one relation each."""
        order = torch.argsort(rel_type, stable=True)
        _, counts = torch.unique_consecutive(rel_type[order], return_counts=True)
        chunks = []
        for group in order.split(counts.tolist()):
            chunks.extend(group.split(self.batch_size))
        return chunks

    # --- ranks and metrics ---------------------------------------------------------

    @abstractmethod
    def _rank_triples(self, model: Any, triples: Tensor) -> Tensor:
        """``[4, E]`` float ranks of checked ``triples`` (on the model's
        device): filtered head, filtered tail, raw head and raw tail ranks.
        Runs inside :func:`eval_mode`."""

    def ranks(self, model: Any, triples: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(head_ranks, tail_ranks, raw_head_ranks, raw_tail_ranks)``, each a
        ``[E]`` float CPU tensor aligned with the rows of ``triples``."""
        self.check_model(model)
        triples = self._check_triples(triples)
        device = model_device(model)
        with eval_mode(model, self.compile):
            out = self._rank_triples(model, triples.to(device))
        head_ranks, tail_ranks, raw_head, raw_tail = out.cpu().unbind(0)
        return head_ranks, tail_ranks, raw_head, raw_tail

    def metrics_from_ranks(self, triples: Tensor, head_ranks: Tensor, tail_ranks: Tensor,
                           raw_head: Tensor, raw_tail: Tensor) -> Dict[str, Any]:
        """The metric dictionary of :meth:`evaluate` from precomputed ranks
        (:func:`~native_pyg.evaluation.metrics.link_prediction_metrics`)."""
        triples = self._check_triples(triples)
        return link_prediction_metrics(triples, head_ranks, tail_ranks, raw_head, raw_tail,
                                       self.hits, self.ties, self.relation_category,
                                       self.seen_entities)

    def evaluate(self, model: Any, triples: Tensor, sample: Optional[int] = None,
                 seed: int = 0, level: float = 0.95) -> Dict[str, Any]:
        """Evaluates ``model`` on ``triples`` (``[E, 3]``, ``(h, r, t)``), all
        of them or, with ``sample``, a seeded subset of ``sample`` triples
        with confidence intervals
        (:func:`~native_pyg.evaluation.query_subsets.evaluate_sample`).

        Returns:
            dict: ``{'head', 'tail', 'both'}`` filtered metrics (``mrr``,
            ``mr``, ``hits@k``), ``'raw'`` with the same three unfiltered,
            ``'per_category'`` (``{category: {'head', 'tail', 'both',
            'count'}}``, empty without categories), ``'per_group'`` (the
            same for ``'seen'`` / ``'unseen'`` triples, empty without
            ``seen_entities``), ``'num_triples'`` and ``'ties'``; for a
            subset its size and intervals; then the protocol's own fields
            (:meth:`_result_fields`). All values are JSON-serialisable
            Python scalars.
        """
        out = evaluate_sample(self, model, triples, sample, seed, level)
        out.update(self._result_fields())
        return out

    # --- what describes the protocol -----------------------------------------------

    def protocol_fields(self) -> Dict[str, Any]:
        """What names the protocol in a result: ``{'protocol': name}``, plus
        the settings its numbers depend on."""
        return {'protocol': self.protocol}

    def _result_fields(self) -> Dict[str, Any]:
        """The fields :meth:`evaluate` adds to the metrics."""
        return self.protocol_fields()

    def describe(self) -> str:
        """The protocol and its settings in words, e.g. ``'full, realistic ties'``."""
        return f'{self.protocol}, {self.ties} ties'

    def encoded_once(self, model: Any, progress: Optional[bool] = None) -> ContextManager[None]:
        """A context in which several evaluations of ``model`` (e.g. of the
        valid and test splits) share what the protocol computes once per
        model; nothing unless the protocol overrides it."""
        return contextlib.nullcontext()

    def __repr__(self) -> str:
        values = {'num_known': self.filter.num_known}
        args = ', '.join(f'{k}={values[k] if k in values else getattr(self, k)!r}'
                         for k in self._repr_keys)
        return f'{self.__class__.__name__}({args})'
