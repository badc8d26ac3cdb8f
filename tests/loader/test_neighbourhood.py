import pytest
import torch

from native_pyg.loader.neighbourhood import full_neighbourhood
from native_pyg.nn.gnn import RGCNEncoder


def random_graph(num_nodes=60, num_edges=150, num_types=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    return edge_index, torch.randint(0, num_types, (num_edges,), generator=g)


@pytest.mark.parametrize('num_layers', [1, 2, 3])
def test_the_encoder_on_the_full_neighbourhood_equals_the_full_graph_on_the_seeds(num_layers):
    edge_index, edge_type = random_graph()
    seeds = torch.tensor([7, 3, 41, 12])
    sub = full_neighbourhood(seeds, edge_index, edge_type, 60, num_layers)
    n_id = sub['n_id']
    assert n_id[:4].tolist() == seeds.tolist() and n_id.unique().numel() == n_id.numel()
    assert sum(sub['num_sampled_nodes']) == n_id.numel()
    assert sum(sub['num_sampled_edges']) == sub['edge_type'].numel()
    # the edges of hop k end in the nodes first reached at hop k - 1
    bounds = torch.tensor([0, *sub['num_sampled_nodes']]).cumsum(0)
    first = 0
    for k, count in enumerate(sub['num_sampled_edges']):
        dst = sub['edge_index'][1, first:first + count]
        assert bool(((dst >= bounds[k]) & (dst < bounds[k + 1])).all())
        first += count
    torch.manual_seed(0)
    encoder = RGCNEncoder(8, 3, num_layers=num_layers, num_bases=2)
    x = torch.randn(60, 8)
    full = encoder(x, edge_index, edge_type)[seeds]
    trimmed = encoder(x[n_id], sub['edge_index'], sub['edge_type'],
                      num_sampled_nodes_per_hop=sub['num_sampled_nodes'],
                      num_sampled_edges_per_hop=sub['num_sampled_edges'])
    torch.testing.assert_close(trimmed, full)
    # fewer edges than the whole graph: what the cut is for
    if num_layers == 1:
        assert sub['edge_type'].numel() < edge_type.numel()


def test_a_seed_without_edges_is_its_own_neighbourhood():
    edge_index, edge_type = torch.tensor([[0, 1], [1, 2]]), torch.tensor([0, 1])
    sub = full_neighbourhood(torch.tensor([5]), edge_index, edge_type, 6, 2)
    assert sub['n_id'].tolist() == [5]
    assert sub['num_sampled_nodes'] == [1, 0, 0] and sub['num_sampled_edges'] == [0, 0]
    assert sub['edge_index'].shape == (2, 0)
