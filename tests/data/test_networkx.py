import networkx as nx
import pytest
import torch

from native_pyg.data.networkx import from_networkx, to_networkx
from native_pyg.data.schema import build_mmkg, split_triples

SPLITS = ('train', 'valid', 'test')


def mmkg():
    gen = torch.Generator().manual_seed(0)
    n, r = 30, 5  # relation 4 has no triples: it must survive the round trip
    def rows(k):
        return torch.stack([torch.randint(0, n, (k, ), generator=gen),
                            torch.randint(0, r - 1, (k, ), generator=gen),
                            torch.randint(0, n, (k, ), generator=gen)], 1)
    train = rows(60)
    train = torch.cat([train, train[:5]])  # duplicate rows become parallel edges
    image = torch.randn(n, 4, generator=gen)
    text = torch.randn(n, 2, generator=gen)
    image_mask = torch.rand(n, generator=gen) < 0.7
    text_mask = torch.rand(n, generator=gen) < 0.5
    text_mask[0] = True
    text[0] = 0.0  # a present all-zero vector stays present
    data = build_mmkg(n, r, train, rows(10), rows(10),
                      entity_names=[f'e{i}' for i in range(n)],
                      relation_names=[f'rel{i}' for i in range(r)],
                      features={'image': image, 'text': text},
                      masks={'image': image_mask, 'text': text_mask})
    data.name = 'toy'
    return data


def sorted_rows(t):
    return sorted(map(tuple, t.tolist()))


def test_round_trip():
    data = mmkg()
    G = to_networkx(data)
    assert isinstance(G, nx.MultiDiGraph)
    assert G.number_of_nodes() == 30 and G.number_of_edges() == 85
    back = from_networkx(G)
    assert back['entity'].name == data['entity'].name
    assert back.relation_names == data.relation_names and back.num_relations == 5
    assert back.name == 'toy'
    for s in SPLITS:
        assert sorted_rows(split_triples(back, s)) == sorted_rows(split_triples(data, s))
    for m in ('image', 'text'):
        assert torch.equal(back[m].mask, data[m].mask)
        assert torch.equal(back[m].x, data[m].x)
    assert bool(back['text'].mask[0])


def test_to_networkx_copies_features():
    data = mmkg()
    before = data['image'].x.clone()
    G = to_networkx(data)
    node = next(n for n, attrs in G.nodes(data=True) if 'image' in attrs)
    G.nodes[node]['image'].fill_(123.0)
    assert torch.equal(data['image'].x, before)


def hand_graph():
    G = nx.MultiDiGraph()
    G.add_node('a', image=torch.tensor([1.0, 2.0]), text=torch.tensor([1, 0, 0]), label='x')
    G.add_node(2, image=None, text=torch.tensor([0, 1, 0]))
    G.add_node('c', image=torch.tensor([3.0, 4.0]))
    G.add_edge('a', 2, relation='likes')                  # no split: train
    G.add_edge(2, 'c', relation='knows', split='train')
    G.add_edge('a', 'c', relation='likes', split='valid')
    G.add_edge('c', 'a', relation='knows', split='test')
    return G


def test_from_networkx_hand_graph():
    data = from_networkx(hand_graph())
    assert data['entity'].name == ['a', '2', 'c']
    assert data.relation_names == ['likes', 'knows']  # first appearance
    assert split_triples(data, 'train').tolist() == [[0, 0, 1], [1, 1, 2]]
    assert split_triples(data, 'valid').tolist() == [[0, 0, 2]]
    assert split_triples(data, 'test').tolist() == [[2, 1, 0]]
    assert data['image'].mask.tolist() == [True, False, True]
    assert data['image'].x.tolist() == [[1.0, 2.0], [0.0, 0.0], [3.0, 4.0]]
    assert data['text'].mask.tolist() == [True, True, False]
    assert data['text'].x.is_floating_point()
    assert 'label' not in data.node_types  # not a tensor attribute
    only = from_networkx(hand_graph(), modalities=['text'])
    assert only.node_types == ['entity', 'text']


def test_custom_keys():
    G = nx.MultiDiGraph()
    G.add_edge(0, 1, r='p', s='valid')
    G.add_edge(1, 0, r='q')
    data = from_networkx(G, relation_key='r', split_key='s')
    assert split_triples(data, 'valid').tolist() == [[0, 0, 1]]
    H = to_networkx(data, relation_key='r', split_key='s')
    assert sorted((u, v, d['r'], d['s']) for u, v, d in H.edges(data=True)) == \
        [('0', '1', 'p', 'valid'), ('1', '0', 'q', 'train')]


def test_bad_graphs_edges_splits_and_node_features_are_one_line_errors():
    with pytest.raises(TypeError, match='MultiDiGraph'):
        from_networkx(nx.DiGraph([(0, 1)]))

    G = hand_graph()
    G.add_edge('c', 2, kind='oops')
    with pytest.raises(ValueError, match=r"\('c', 2.*relation"):
        from_networkx(G)

    G = hand_graph()
    G.add_edge('c', 2, relation='likes', split='dev')
    with pytest.raises(ValueError, match="'dev'"):
        from_networkx(G)

    G = hand_graph()
    G.nodes['c']['image'] = torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="'c'.*'image'"):
        from_networkx(G)

    G = hand_graph()
    G.nodes['c']['image'] = torch.ones(2, 2)
    with pytest.raises(ValueError, match="1-D"):
        from_networkx(G)

    with pytest.raises(ValueError, match="'video'"):
        from_networkx(hand_graph(), modalities=['video'])

    data = build_mmkg(2, 1, torch.tensor([[0, 0, 1]]), entity_names=['same', 'same'])
    with pytest.raises(ValueError, match="'same'"):
        to_networkx(data)
