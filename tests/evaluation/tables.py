"""Table models for the ranking tests: fixed score tables, whose ranks a
reference written out with Python loops recomputes one query at a time."""
import torch


class TableModel(torch.nn.Module):
    """Fake model whose scores are fixed tables: ``tails[r, h]`` is the score
    row of the tail query ``(h, r, ?)``, ``heads[r, t]`` that of ``(?, r, t)``.
    Records every call and refuses calls that mix relations."""
    def __init__(self, tails: torch.Tensor, heads: torch.Tensor):
        super().__init__()
        self.register_buffer('tails', tails.float())
        self.register_buffer('heads', heads.float())
        self.calls = []

    def _record(self, rel_type):
        assert torch.unique(rel_type).numel() == 1, 'a call mixed relations'
        self.calls.append({'size': rel_type.numel(), 'training': self.training,
                           'grad': torch.is_grad_enabled()})

    def score_tails(self, head_index, rel_type):
        self._record(rel_type)
        return self.tails[rel_type, head_index]

    def score_heads(self, rel_type, tail_index):
        self._record(rel_type)
        return self.heads[rel_type, tail_index]


def one_relation_model(num_entities, tail_rows=None, head_rows=None):
    """A one-relation TableModel with the given score rows (dict entity -> row)."""
    tails = torch.zeros(1, num_entities, num_entities)
    heads = torch.zeros(1, num_entities, num_entities)
    for h, row in (tail_rows or {}).items():
        tails[0, h] = torch.tensor(row)
    for t, row in (head_rows or {}).items():
        heads[0, t] = torch.tensor(row)
    return TableModel(tails, heads)


def reference_rank(scores, target, removed, ties):
    """Per-query rank, written out with Python loops over candidates."""
    s = scores.tolist()
    better = sum(1 for j, v in enumerate(s) if j not in removed and j != target and v > s[target])
    tied = sum(1 for j, v in enumerate(s) if j not in removed and j != target and v == s[target])
    return {'optimistic': better + 1, 'pessimistic': better + tied + 1,
            'realistic': better + tied / 2 + 1}[ties]


def random_problem(seed, num_entities=12, num_relations=3, num_known=70, num_test=25):
    gen = torch.Generator().manual_seed(seed)
    known = torch.stack([torch.randint(num_entities, (num_known,), generator=gen),
                         torch.randint(num_relations, (num_known,), generator=gen),
                         torch.randint(num_entities, (num_known,), generator=gen)], dim=1)
    test = known[torch.randint(num_known, (num_test,), generator=gen)]
    # plus random triples, mostly unknown: their targets are not filtered either
    extra = torch.stack([torch.randint(num_entities, (5,), generator=gen),
                         torch.randint(num_relations, (5,), generator=gen),
                         torch.randint(num_entities, (5,), generator=gen)], dim=1)
    test = torch.cat([test, extra])
    # few distinct values, so that ties are frequent
    shape = (num_relations, num_entities, num_entities)
    tails = torch.randint(0, 4, shape, generator=gen).float()
    heads = torch.randint(0, 4, shape, generator=gen).float()
    return known, test, TableModel(tails, heads)


def reference_ranks(known, test, model, ties, filtered=True):
    """Head and tail ranks computed one query at a time."""
    known_set = {tuple(x) for x in known.tolist()}
    head_ranks, tail_ranks = [], []
    for h, r, t in test.tolist():
        n = model.tails.size(1)
        tail_removed = {c for c in range(n) if filtered and (h, r, c) in known_set}
        head_removed = {c for c in range(n) if filtered and (c, r, t) in known_set}
        tail_ranks.append(reference_rank(model.tails[r, h], t, tail_removed, ties))
        head_ranks.append(reference_rank(model.heads[r, t], h, head_removed, ties))
    return torch.tensor(head_ranks), torch.tensor(tail_ranks)
