"""The known true triples a filtered ranking removes from each query's
candidates (:class:`KnownTripleFilter`)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from native_pyg.data.relations import distinct_triples

__all__ = ['KnownTripleFilter']


class KnownTripleFilter:
    r"""Looks up the known answers of batches of link-prediction queries, for
    filtered ranking.

    The known triples are kept as two sorted tables of int64 keys: the unique
    ``(h, r, t)`` rows by :math:`(r \cdot N + h) \cdot N + t` (tail queries,
    answers :math:`t`) and by :math:`(r \cdot N + t) \cdot N + h` (head
    queries, answers :math:`h`). A query's answers are one contiguous range
    of keys, found with :func:`torch.searchsorted`, and each answer is its key
    modulo :math:`N`; batches of queries expand their ranges with
    :func:`torch.repeat_interleave` into ``(query row, answer)`` index pairs
    (or a dense ``[B, N]`` mask built with ``index_put_``), with no Python
    loop per query. Where :math:`R N^2` would pass int64, each table is a
    query key :math:`r \cdot N + h` and the answers beside it.

    Args:
        known_triples (torch.Tensor): ``[E, 3]`` ``(head, relation, tail)`` rows.
        num_entities (int): Number of entities :math:`N`.
    """
    def __init__(self, known_triples: Tensor, num_entities: int):
        known = torch.as_tensor(known_triples).long().view(-1, 3)
        if known.numel():
            ent = known[:, [0, 2]]
            if int(ent.min()) < 0 or int(ent.max()) >= num_entities:
                raise ValueError(f"known triples hold entity ids outside [0, {num_entities})")
            if int(known[:, 1].min()) < 0:
                raise ValueError("known triples hold negative relation ids")
        self.num_entities = n = int(num_entities)
        h, r, t = distinct_triples(known.cpu(), n).unbind(1)
        self.num_known = h.numel()
        num_relations = int(r.max()) + 1 if r.numel() else 1
        #: one key per triple with the answer inside it (half the memory of key and answer)
        self.packed = num_relations * n * n < 2 ** 63
        self._tables = {torch.device('cpu'): (self._sorted(r * n + h, t), self._sorted(r * n + t, h))}

    def _sorted(self, key: Tensor, answer: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        if self.packed:
            return torch.sort(key * self.num_entities + answer).values, None
        order = torch.argsort(key, stable=True)
        return key[order].contiguous(), answer[order].contiguous()

    def _on(self, device: torch.device):
        # Tables are copied to a device once, on first use there.
        device = torch.device(device)
        if device.type == 'cuda' and device.index is None:
            device = torch.device('cuda', torch.cuda.current_device())
        if device not in self._tables:
            cpu = self._tables[torch.device('cpu')]
            self._tables[device] = tuple((k.to(device), None if a is None else a.to(device))
                                         for k, a in cpu)
        return self._tables[device]

    def _pairs(self, table: Tuple[Tensor, Optional[Tensor]],
               query_key: Tensor) -> Tuple[Tensor, Tensor]:
        keys, answers = table
        n = self.num_entities
        # keys are integers: the end of a query's range is the start of the next query key's
        bounds = torch.cat([query_key, query_key + 1])
        start, end = torch.searchsorted(keys, bounds * n if answers is None else bounds).chunk(2)
        count = end - start
        row = torch.repeat_interleave(torch.arange(query_key.numel(), device=query_key.device),
                                      count, output_size=int(count.sum()))
        # position of each answer inside its query's range
        offset = torch.arange(row.numel(), device=row.device) - (count.cumsum(0) - count)[row]
        at = start[row] + offset
        return row, (keys[at] % n if answers is None else answers[at])

    def tail_pairs(self, head_index: Tensor, rel_type: Tensor) -> Tuple[Tensor, Tensor]:
        """``(row, tail)`` index pairs: every known ``(h_row, r_row, tail)``."""
        table = self._on(head_index.device)[0]
        return self._pairs(table, rel_type.long() * self.num_entities + head_index.long())

    def head_pairs(self, rel_type: Tensor, tail_index: Tensor) -> Tuple[Tensor, Tensor]:
        """``(row, head)`` index pairs: every known ``(head, r_row, t_row)``."""
        table = self._on(tail_index.device)[1]
        return self._pairs(table, rel_type.long() * self.num_entities + tail_index.long())

    def _dense(self, pairs: Tuple[Tensor, Tensor], num_queries: int) -> Tensor:
        row, col = pairs
        mask = torch.zeros(num_queries, self.num_entities, dtype=torch.bool, device=row.device)
        mask.index_put_((row, col), torch.ones_like(row, dtype=torch.bool))
        return mask

    def tail_mask(self, head_index: Tensor, rel_type: Tensor) -> Tensor:
        """``[B, N]`` bool: ``True`` at every ``t`` with ``(h, r, t)`` known."""
        return self._dense(self.tail_pairs(head_index, rel_type), head_index.numel())

    def head_mask(self, rel_type: Tensor, tail_index: Tensor) -> Tensor:
        """``[B, N]`` bool: ``True`` at every ``h`` with ``(h, r, t)`` known."""
        return self._dense(self.head_pairs(rel_type, tail_index), tail_index.numel())

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_known={self.num_known}, '
                f'num_entities={self.num_entities})')
