"""The structural table interface: the dense and row-sparse tables look rows
up as torch.nn.Embedding does, differ only in their gradients, grow
reproducibly, keep NativE's state-dict keys, and a table given to NativE is
the one it reads."""
import pytest
import torch

from native_pyg.nn import DenseTable, NativE, RowSparseTable, StructuralTable
from native_pyg.training.optimizers import build_optimizer, sparse_tables


def test_rows_and_draws_are_those_of_torch_embedding():
    for table_type, sparse in ((DenseTable, False), (RowSparseTable, True)):
        torch.manual_seed(3)
        table = table_type(7, 4)
        after_table = torch.rand(1)
        torch.manual_seed(3)
        reference = torch.nn.Embedding(7, 4, sparse=sparse)
        # the same initial rows, and the global RNG left where the embedding leaves it
        assert torch.equal(table.weight, reference.weight)
        assert torch.equal(after_table, torch.rand(1))
        index = torch.tensor([[1, 5], [5, 0]])
        assert torch.equal(table(index), reference(index))
        assert table(None) is table.weight  # all rows, no copy
        table(index).sum().backward()
        reference(index).sum().backward()
        assert table.weight.grad.is_sparse == sparse
        assert torch.equal(table.weight.grad.to_dense(), reference.weight.grad.to_dense())


def test_row_mean_squares_agree_and_keep_the_tables_gradient_kind():
    dense, sparse = DenseTable(6, 3), RowSparseTable(6, 3)
    with torch.no_grad():
        sparse.weight.copy_(dense.weight)
    h, t = torch.tensor([0, 2, 2]), torch.tensor([5, 1, 0])
    got = {}
    for table in (dense, sparse):
        hs, ts = table.row_mean_squares(h, t)
        (hs.mean() + ts.mean()).backward()
        got[table.sparse] = (hs, ts, table.weight.grad)
    torch.testing.assert_close(got[True][0], dense.weight[h].pow(2).mean(1))
    for a, b in zip(got[False][:2], got[True][:2]):
        torch.testing.assert_close(a, b)
    assert not got[False][2].is_sparse and got[True][2].is_sparse
    torch.testing.assert_close(got[False][2], got[True][2].to_dense())


def test_only_the_row_sparse_table_is_stepped_by_a_table_optimiser():
    assert DenseTable(3, 2).sparse_parameters() == []
    sparse = RowSparseTable(3, 2)
    assert sparse.sparse_parameters() == [sparse.weight]
    model = torch.nn.ModuleDict({'table': sparse, 'plain': torch.nn.Embedding(4, 2, sparse=True),
                                 'dense': DenseTable(3, 2)})
    assert sparse_tables(model) == [sparse.weight, model['plain'].weight]
    with pytest.raises(ValueError, match='sparse entity table'):
        build_optimizer(torch.nn.ModuleDict({'t': DenseTable(3, 2)}), 0.1, 'rowwise_adagrad')


@pytest.mark.parametrize('table_type', [DenseTable, RowSparseTable])
def test_extended_keeps_the_rows_and_draws_seeded_new_ones(table_type):
    table = table_type(4, 3)
    init = lambda x: torch.nn.init.uniform_(x, -1.0, 1.0)  # noqa: E731
    grown, again = table.extended(2, init, seed=9), table.extended(2, init, seed=9)
    assert type(grown) is table_type and grown.weight.shape == (6, 3)
    assert torch.equal(grown.weight[:4], table.weight)
    assert torch.equal(grown.weight, again.weight)
    assert not torch.equal(grown.weight[4:], table.extended(2, init, seed=10).weight[4:])


def test_natives_table_keeps_its_state_dict_key_and_a_given_table_is_read():
    dense, sparse = NativE(5, 2, 4), NativE(5, 2, 4, sparse=True)
    assert type(dense.entity_emb) is DenseTable and type(sparse.entity_emb) is RowSparseTable
    assert [k for k in dense.state_dict() if k.startswith('entity_emb')] == ['entity_emb.weight']
    sparse.load_state_dict(dense.state_dict())
    assert torch.equal(sparse.entity_emb.weight, dense.entity_emb.weight)

    class Counting(DenseTable):
        lookups = 0

        def forward(self, index=None):
            Counting.lookups += 1
            return super().forward(index)

    given = Counting(5, 8)  # RotatE: 2 x hidden reals per entity
    model = NativE(5, 2, 4, table=given)
    assert model.entity_emb is given
    h = torch.tensor([0, 1])
    model(h, torch.tensor([0, 1]), torch.tensor([2, 3]))
    assert Counting.lookups > 0
    torch.testing.assert_close(model.structural_embeddings(h), given.weight[h])
    with pytest.raises(ValueError, match='5 rows of size 4; the model needs 5 of size 8'):
        NativE(5, 2, 4, table=DenseTable(5, 4))


def test_the_interface_is_abstract():
    table = StructuralTable(3, 2)
    with pytest.raises(NotImplementedError):
        table(torch.tensor([0]))
    assert table.sparse is False and table.sparse_parameters() == []
