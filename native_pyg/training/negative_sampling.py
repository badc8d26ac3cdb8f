"""Negative sampling by head-or-tail corruption."""
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

    def sample(self, pos: Tensor) -> Tuple[Tensor, Tensor]:
        """Returns ``(neg_index [B, K], corrupt_head [B])`` for positives
        ``pos`` ``[B, 3]`` (on the CPU; move them with the batch)."""
        pos = pos.long().cpu()
        b, k, g = pos.size(0), self.num_negatives, self.generator
        corrupt_head = torch.rand(b, generator=g) < self.head_prob[pos[:, 1]]
        cand = torch.randint(0, self.num_entities, (b, k), generator=g)
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
