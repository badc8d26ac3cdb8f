"""Negative sampling by head-or-tail corruption: each positive its own
negatives, or negatives shared by chunks of positives plus in-batch ones;
the corrupted side drawn once per positive or once per negative."""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import Tensor

from native_pyg.config.rules import CORRUPT_SIDES
from native_pyg.data.relations import isin_sorted, relation_tph_hpt, triple_keys

#: ``training.corrupt_side``: one side per positive row (``corrupt_head``
#: ``[B]``) or one per negative (``[B, K]``, as the authors' Base.cpp)


def check_corrupt_side(corrupt_side: str) -> str:
    """``corrupt_side`` if it is one of :data:`CORRUPT_SIDES`, else a one-line
    :class:`ValueError`."""
    if corrupt_side not in CORRUPT_SIDES:
        raise ValueError(f"training.corrupt_side must be one of {', '.join(CORRUPT_SIDES)}, "
                         f"got {corrupt_side!r}")
    return corrupt_side


class BernoulliNegativeSampler:
    r"""Corrupts the head or the tail of each positive triple with
    ``num_negatives`` random entities.

    With ``bernoulli=True`` the head of a triple of relation :math:`r` is
    corrupted with probability

    .. math::
        p_r = \frac{\mathrm{tph}_r}{\mathrm{tph}_r + \mathrm{hpt}_r}

    (fewer false negatives on 1-N / N-1 relations), otherwise with
    probability 1/2. With ``corrupt_side='row'`` all negatives of one
    positive corrupt the same side (``corrupt_head`` ``[B]``); with
    ``'negative'`` each negative draws its own side with the same
    probability, independently (``corrupt_head`` ``[B, K]``, as the authors'
    code). With ``filtered=True`` no returned negative is a known training
    triple for its own side (rejected candidates are redrawn, fully
    vectorised).

    Args:
        train_triples (torch.Tensor): ``[E, 3]`` ``(head, relation, tail)``.
        num_entities (int): Number of entities.
        num_relations (int): Number of relations.
        num_negatives (int): Negatives per positive.
        bernoulli (bool): Bernoulli (tph/hpt) or uniform side choice.
        filtered (bool): Never return a known training triple.
        seed (int): Seed of the sampler's own generator.
        corrupt_side (str): ``'row'`` (one side per positive) or
            ``'negative'`` (one per negative). (default: :obj:`'row'`)
    """
    def __init__(self, train_triples: Tensor, num_entities: int, num_relations: int,
                 num_negatives: int = 32, bernoulli: bool = True, filtered: bool = True,
                 seed: int = 0, max_rounds: int = 50, corrupt_side: str = 'row') -> None:
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        self.num_entities, self.num_relations = num_entities, num_relations
        self.num_negatives, self.bernoulli, self.filtered = num_negatives, bernoulli, filtered
        self.max_rounds = max_rounds
        self.corrupt_side = corrupt_side
        tph, hpt = relation_tph_hpt(train_triples, num_relations)
        self.head_prob = tph / (tph + hpt) if bernoulli else torch.full_like(tph, 0.5)
        self.known = torch.unique(triple_keys(train_triples, num_entities, num_relations))
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def corrupt_side(self) -> str:
        """``'row'`` or ``'negative'``: what one draw of the side covers."""
        return self._corrupt_side

    @corrupt_side.setter
    def corrupt_side(self, value: str) -> None:
        self._corrupt_side = check_corrupt_side(value)

    @property
    def width(self) -> int:
        """Negatives per positive: the columns of :meth:`sample`'s ``neg_index``."""
        return self.num_negatives

    def _is_known(self, keys: Tensor) -> Tensor:
        return isin_sorted(keys, self.known)

    def _keys(self, pos: Tensor, cand: Tensor, corrupt_head: Tensor) -> Tensor:
        side = corrupt_head if corrupt_head.dim() == 2 else corrupt_head.unsqueeze(1)
        h = torch.where(side, cand, pos[:, 0:1])
        t = torch.where(side, pos[:, 2:3], cand)
        return (h * self.num_relations + pos[:, 1:2]) * self.num_entities + t

    def _draw(self, pos: Tensor, corrupt_head: Tensor) -> Tensor:
        """``[B, K]`` candidate negatives before filtering."""
        return torch.randint(0, self.num_entities, (pos.size(0), self.num_negatives),
                             generator=self.generator)

    def _sides(self, pos: Tensor) -> Tensor:
        """``corrupt_head``: ``[B]`` (``corrupt_side='row'``) or ``[B, K]``."""
        p = self.head_prob[pos[:, 1]]
        if self.corrupt_side == 'row':
            return torch.rand(pos.size(0), generator=self.generator) < p
        return torch.rand(pos.size(0), self.width, generator=self.generator) < p.unsqueeze(1)

    def sample(self, pos: Tensor) -> Tuple[Tensor, Tensor]:
        """Returns ``(neg_index [B, K], corrupt_head)`` for positives ``pos``
        ``[B, 3]`` (on the CPU; move them with the batch); ``corrupt_head`` is
        ``[B]`` with ``corrupt_side='row'``, ``[B, K]`` with ``'negative'``."""
        pos = pos.long().cpu()
        g = self.generator
        corrupt_head = self._sides(pos)
        cand = self._draw(pos, corrupt_head)
        k = cand.size(1)
        if not self.filtered:
            return cand, corrupt_head
        bad = self._is_known(self._keys(pos, cand, corrupt_head))
        for _ in range(self.max_rounds):
            if not bool(bad.any()):
                return cand, corrupt_head
            cand[bad] = torch.randint(0, self.num_entities, (int(bad.sum()),), generator=g)
            bad = self._is_known(self._keys(pos, cand, corrupt_head))
        # Rows whose side is almost saturated: draw from the explicit complement.
        if corrupt_head.dim() == 2:
            return self._complement_per_negative(pos, cand, corrupt_head, bad), corrupt_head
        rows = bad.any(1).nonzero().flatten()
        allowed = self._allowed(pos[rows], corrupt_head[rows])
        draws = torch.multinomial(allowed.float(), k, replacement=True, generator=g)
        cand[rows] = torch.where(bad[rows], draws, cand[rows])
        return cand, corrupt_head

    def _allowed(self, pos: Tensor, corrupt_head: Tensor) -> Tensor:
        """``[P, N]``: which entities make no known triple when they replace
        the ``corrupt_head`` ``[P]`` side of ``pos`` ``[P, 3]``."""
        allowed = ~self._is_known(self._keys(
            pos, torch.arange(self.num_entities).expand(pos.size(0), -1), corrupt_head))
        if not bool(allowed.any(1).all()):
            raise RuntimeError("a positive has no possible negative: every corruption of its "
                               "side is a known training triple")
        return allowed

    def _complement_per_negative(self, pos: Tensor, cand: Tensor, corrupt_head: Tensor,
                                 bad: Tensor) -> Tensor:
        """Redraws the ``bad`` entries of ``cand`` from the complement of their
        own (positive, side), each such pair's complement built once."""
        rows, cols = bad.nonzero().unbind(1)
        side = corrupt_head[rows, cols]
        pairs, inv = torch.unique(rows * 2 + side.long(), return_inverse=True)
        allowed = self._allowed(pos[pairs // 2], (pairs % 2).bool())
        draws = torch.multinomial(allowed.float(), cand.size(1), replacement=True,
                                  generator=self.generator)
        cand[rows, cols] = draws[inv, cols]
        return cand

    def state_dict(self) -> Dict[str, Tensor]:
        return {'generator': self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Tensor]) -> None:
        self.generator.set_state(state['generator'])

    def _side_repr(self) -> str:
        return '' if self.corrupt_side == 'row' else f', corrupt_side={self.corrupt_side!r}'

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_negatives={self.num_negatives}, '
                f'bernoulli={self.bernoulli}, filtered={self.filtered}{self._side_repr()})')


class SharedNegativeSampler(BernoulliNegativeSampler):
    r"""Negatives shared by chunks of positives, as PyTorch-BigGraph draws
    them, so that a step touches :math:`O(B + K B / C)` distinct entities
    instead of :math:`O(B K)`: the positives of a batch are cut into chunks
    of ``chunk_size`` :math:`C` consecutive rows, and every positive of a
    chunk gets the same ``num_negatives`` :math:`K` uniform entities. With
    ``in_batch`` :math:`I > 0`, row :math:`b` also gets the corrupted-side
    entities of the next :math:`I` positives of the batch (rows
    :math:`b+1, \ldots, b+I` modulo :math:`B`: tails when its tail is
    corrupted, heads otherwise), which adds no entity to the step.

    The side of each positive is drawn as in
    :class:`BernoulliNegativeSampler`; with ``filtered=True`` an entry that
    makes a known training triple is redrawn uniformly for that positive
    alone (at scale, rare). With ``corrupt_side='negative'`` every entry of
    ``neg_index`` has its own side: the positives of a chunk share the
    entities but not the sides, and in-batch entry :math:`s` of row
    :math:`b` is the head of row :math:`b+s` when that entry corrupts the
    head, its tail otherwise.

    Args:
        train_triples (torch.Tensor): ``[E, 3]`` ``(head, relation, tail)``.
        num_entities (int): Number of entities.
        num_relations (int): Number of relations.
        num_negatives (int): Shared uniform negatives per chunk :math:`K`.
        chunk_size (int): Positives per chunk :math:`C`.
        in_batch (int): In-batch negatives per positive :math:`I`.
            (default: :obj:`0`)
        **kwargs: ``bernoulli``, ``filtered``, ``seed``, ``corrupt_side``
            as in :class:`BernoulliNegativeSampler`.

    Returns from :meth:`sample` ``neg_index`` ``[B, K + I]``.
    """
    def __init__(self, train_triples: Tensor, num_entities: int, num_relations: int,
                 num_negatives: int = 32, chunk_size: int = 256, in_batch: int = 0, **kwargs):
        super().__init__(train_triples, num_entities, num_relations, num_negatives, **kwargs)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if in_batch < 0:
            raise ValueError(f"in_batch must be >= 0, got {in_batch}")
        self.chunk_size, self.in_batch = int(chunk_size), int(in_batch)

    @property
    def width(self) -> int:
        return self.num_negatives + self.in_batch

    def _draw(self, pos: Tensor, corrupt_head: Tensor) -> Tensor:
        b, k = pos.size(0), self.num_negatives
        size = min(self.chunk_size, b)
        shared = torch.randint(0, self.num_entities, (-(-b // size), k), generator=self.generator)
        cand = shared.repeat_interleave(size, dim=0)[:b]
        if self.in_batch == 0:
            return cand
        if self.in_batch >= b:
            raise ValueError(f"in_batch={self.in_batch} negatives need batches of more than "
                             f"{self.in_batch} positives, got {b}")
        rows = (torch.arange(b).view(-1, 1) + torch.arange(1, self.in_batch + 1)) % b
        side = (corrupt_head.view(-1, 1) if corrupt_head.dim() == 1
                else corrupt_head[:, self.num_negatives:])
        others = torch.where(side, pos[rows, 0], pos[rows, 2])
        return torch.cat([cand, others], dim=1)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_negatives={self.num_negatives}, '
                f'chunk_size={self.chunk_size}, in_batch={self.in_batch}, '
                f'bernoulli={self.bernoulli}, filtered={self.filtered}{self._side_repr()})')


def build_negative_sampler(train_triples: Tensor, num_entities: int, num_relations: int,
                           num_negatives: int, bernoulli: bool = True, filtered: bool = True,
                           seed: int = 0, shared_chunk: int = 0,
                           in_batch: int = 0,
                           corrupt_side: str = 'row') -> BernoulliNegativeSampler:
    """Per-positive negatives (``shared_chunk=0`` and ``in_batch=0``, the
    paper's), else a :class:`SharedNegativeSampler` (``shared_chunk=0``
    with in-batch negatives: one chunk per batch); the side drawn per
    positive or per negative (``corrupt_side``), whichever the layout."""
    kwargs = dict(bernoulli=bernoulli, filtered=filtered, seed=seed,
                  corrupt_side=corrupt_side)
    if shared_chunk == 0 and in_batch == 0:
        return BernoulliNegativeSampler(train_triples, num_entities, num_relations,
                                        num_negatives, **kwargs)
    return SharedNegativeSampler(train_triples, num_entities, num_relations, num_negatives,
                                 chunk_size=shared_chunk or 2 ** 31, in_batch=in_batch, **kwargs)
