"""Small NativE problems for the protocol tests: triples over ``N`` entities
with tied copies and a NaN entity, models of four kinds, and rank checks."""
import torch

from native_pyg.nn import NativE

N, R = 40, 3
#: entities 30..33 are copies of 29 (same structure row, no feature): exact ties
COPIES = (29, 30, 31, 32, 33)
NAN_ENTITY = 7


def problem(seed=0):
    """``(train, known, test)`` over ``N`` entities; the test triples include
    unknown ones and ones whose targets are tied copies."""
    g = torch.Generator().manual_seed(seed)
    known = torch.stack([torch.randint(N, (150,), generator=g),
                         torch.randint(R, (150,), generator=g),
                         torch.randint(N, (150,), generator=g)], dim=1)
    train = known[:100]
    extra = torch.tensor([[0, 0, 29], [0, 0, 31], [30, 1, 5], [32, 2, 33], [29, 1, 30],
                          [NAN_ENTITY, 0, 3], [4, 2, NAN_ENTITY], [5, 1, 6]])
    test = torch.cat([known[100:150], extra])
    return train, torch.cat([known, extra[:4]]), test


def build(kind, train):
    """A small NativE: ``'features'`` (2 modalities, rows missing), ``'one'``
    (1 modality), ``'structure'`` (structure only) or ``'integer'`` (DistMult
    on small integer embeddings, so that ties are everywhere and exact,
    and a NaN entity)."""
    edge_index, edge_type = train[:, [0, 2]].t(), train[:, 1]
    if kind == 'integer':
        net = NativE(N, R, 4, scorer='distmult', edge_index=edge_index, edge_type=edge_type)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            net.entity_emb.weight.copy_(torch.randint(-1, 2, (N, 4), generator=g).float())
            net.rel_emb.weight.copy_(torch.randint(-1, 2, (R, 4), generator=g).float())
            net.entity_emb.weight[NAN_ENTITY] = float('nan')
        return net
    feats, masks = {}, {}
    g = torch.Generator().manual_seed(2)
    for i in range({'features': 2, 'one': 1, 'structure': 0}[kind]):
        mask = torch.rand(N, generator=g) > 0.3
        mask[list(COPIES)] = False
        feats[f'm{i}'] = torch.randn(N, 5 + 2 * i, generator=g) * mask.unsqueeze(1)
        masks[f'm{i}'] = mask
    net = NativE(N, R, 4, feats or None, masks or None, edge_index=edge_index,
                 edge_type=edge_type, seed=3)
    with torch.no_grad():
        net.entity_emb.weight[list(COPIES[1:])] = net.entity_emb.weight[COPIES[0]].clone()
    return net


KINDS = ('features', 'one', 'structure', 'integer')
#: (candidate_chunk, batch_size): dividing N with one block per relation and
#: direction, not dividing N with many blocks, one chunk
CONFIGS = ((8, 512), (7, 5), (N, 512))


def assert_same(expected, got):
    for name, a, b in zip(('head', 'tail', 'raw head', 'raw tail'), expected, got):
        assert torch.equal(a, b), f'{name} ranks differ at {(a != b).nonzero().view(-1).tolist()}'
