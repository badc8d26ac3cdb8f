"""Negative sampling by head-or-tail corruption: each positive its own
negatives, or negatives shared by chunks of positives plus in-batch ones."""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import Tensor

from native_pyg.data.relations import isin_sorted, relation_tph_hpt, triple_keys


class BernoulliNegativeSampler:
    r"""Corrupts the head or the tail of each positive triple with
    ``num_negatives`` random entities.

    With ``bernoulli=True`` the head of a triple of relation :math:`r` is
    corrupted with probability

    .. math::
        p_r = \frac{\mathrm{tph}_r}{\mathrm{tph}_r + \mathrm{hpt}_r}

    (fewer false negatives on 1-N / N-1 relations), otherwise with
    probability 1/2. All negatives of one positive corrupt the same side.
    With ``filtered=True`` no returned negative is a known training triple
    (rejected candidates are redrawn, fully vectorised).

    Args:
        train_triples (torch.Tensor): ``[E, 3]`` ``(head, relation, tail)``.
        num_entities (int): Number of entities.
        num_relations (int): Number of relations.
        num_negatives (int): Negatives per positive.
        bernoulli (bool): Bernoulli (tph/hpt) or uniform side choice.
        filtered (bool): Never return a known training triple.
        seed (int): Seed of the sampler's own generator.
    """
    def __init__(self, train_triples: Tensor, num_entities: int, num_relations: int,
                 num_negatives: int = 32, bernoulli: bool = True, filtered: bool = True,
                 seed: int = 0, max_rounds: int = 50) -> None:
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        self.num_entities, self.num_relations = num_entities, num_relations
        self.num_negatives, self.bernoulli, self.filtered = num_negatives, bernoulli, filtered
        self.max_rounds = max_rounds
        tph, hpt = relation_tph_hpt(train_triples, num_relations)
        self.head_prob = tph / (tph + hpt) if bernoulli else torch.full_like(tph, 0.5)
        self.known = torch.unique(triple_keys(train_triples, num_entities, num_relations))
        self.generator = torch.Generator().manual_seed(seed)

    def _is_known(self, keys: Tensor) -> Tensor:
        return isin_sorted(keys, self.known)

    def _keys(self, pos: Tensor, cand: Tensor, corrupt_head: Tensor) -> Tensor:
        h = torch.where(corrupt_head.unsqueeze(1), cand, pos[:, 0:1])
        t = torch.where(corrupt_head.unsqueeze(1), pos[:, 2:3], cand)
        return (h * self.num_relations + pos[:, 1:2]) * self.num_entities + t

    def _draw(self, pos: Tensor, corrupt_head: Tensor) -> Tensor:
        """``[B, K]`` candidate negatives before filtering."""
        return torch.randint(0, self.num_entities, (pos.size(0), self.num_negatives),
                             generator=self.generator)

    def sample(self, pos: Tensor) -> Tuple[Tensor, Tensor]:
        """Returns ``(neg_index [B, K], corrupt_head [B])`` for positives
        ``pos`` ``[B, 3]`` (on the CPU; move them with the batch)."""
        pos = pos.long().cpu()
        b, g = pos.size(0), self.generator
        corrupt_head = torch.rand(b, generator=g) < self.head_prob[pos[:, 1]]
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
        rows = bad.any(1).nonzero().flatten()
        allowed = ~self._is_known(self._keys(
            pos[rows], torch.arange(self.num_entities).expand(rows.numel(), -1),
            corrupt_head[rows]))
        if not bool(allowed.any(1).all()):
            raise RuntimeError("a positive has no possible negative: every corruption of its "
                               "side is a known training triple")
        draws = torch.multinomial(allowed.float(), k, replacement=True, generator=g)
        cand[rows] = torch.where(bad[rows], draws, cand[rows])
        return cand, corrupt_head

    def state_dict(self) -> Dict[str, Tensor]:
        return {'generator': self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Tensor]) -> None:
        self.generator.set_state(state['generator'])

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_negatives={self.num_negatives}, '
                f'bernoulli={self.bernoulli}, filtered={self.filtered})')


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
    alone (at scale, rare).

    Args:
        train_triples (torch.Tensor): ``[E, 3]`` ``(head, relation, tail)``.
        num_entities (int): Number of entities.
        num_relations (int): Number of relations.
        num_negatives (int): Shared uniform negatives per chunk :math:`K`.
        chunk_size (int): Positives per chunk :math:`C`.
        in_batch (int): In-batch negatives per positive :math:`I`.
            (default: :obj:`0`)
        **kwargs: ``bernoulli``, ``filtered``, ``seed`` as in
            :class:`BernoulliNegativeSampler`.

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
        others = torch.where(corrupt_head.view(-1, 1), pos[rows, 0], pos[rows, 2])
        return torch.cat([cand, others], dim=1)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_negatives={self.num_negatives}, '
                f'chunk_size={self.chunk_size}, in_batch={self.in_batch}, '
                f'bernoulli={self.bernoulli}, filtered={self.filtered})')


def build_negative_sampler(train_triples: Tensor, num_entities: int, num_relations: int,
                           num_negatives: int, bernoulli: bool = True, filtered: bool = True,
                           seed: int = 0, shared_chunk: int = 0,
                           in_batch: int = 0) -> BernoulliNegativeSampler:
    """Per-positive negatives (``shared_chunk=0`` and ``in_batch=0``, the
    paper's), else a :class:`SharedNegativeSampler` (``shared_chunk=0``
    with in-batch negatives: one chunk per batch)."""
    kwargs = dict(bernoulli=bernoulli, filtered=filtered, seed=seed)
    if shared_chunk == 0 and in_batch == 0:
        return BernoulliNegativeSampler(train_triples, num_entities, num_relations,
                                        num_negatives, **kwargs)
    return SharedNegativeSampler(train_triples, num_entities, num_relations, num_negatives,
                                 chunk_size=shared_chunk or 2 ** 31, in_batch=in_batch, **kwargs)
