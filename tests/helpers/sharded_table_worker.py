"""One process of tests/nn/test_sharded_table.py, under torchrun (2
processes, Gloo): a ShardedTable checked against the dense table it
shards; writes what it found to OUT/rank<r>.json."""
import sys

import torch
import torch.distributed as dist

from native_pyg.nn.sharded_table import CHUNK_ROWS, ShardedTable
from native_pyg.nn.structural_table import RowSparseTable
from native_pyg.training.optimizers import RowWiseAdagrad
from tests.helpers.torchrun import report_and_exit

N, D, LR = 13, 4, 0.1  # 13 rows: shards of 7 and 6


def whole(seed=0):
    return torch.randn(N, D, generator=torch.Generator().manual_seed(seed))


def main(out):
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    found = {'world': world}
    table = ShardedTable(N, D, lr=LR)
    full = whole()
    table.copy_rows_(full)
    start, stop = table.row_range
    found['range'] = [start, stop]
    found['holds_only_its_rows'] = table.local_rows().shape[0] == stop - start < N
    # lookups: ids on either shard, repeated, in a 2-d index
    index = torch.tensor([[12, 0, 5], [5, 6, 11]]) if rank == 0 else torch.tensor([[1, 12]])
    found['lookup'] = torch.equal(table(index), full[index])
    squares = table.row_mean_squares(index, index[:, :1])
    found['row_mean_squares'] = all(torch.allclose(s, full[i].pow(2).mean(-1))
                                    for s, i in zip(squares, (index, index[:, :1])))
    try:
        table()
        found['whole_refused'] = False
    except ValueError:
        found['whole_refused'] = True
    # one step: the rows each process read, updated by the fused row-wise Adagrad with the
    # gradients of both processes averaged, equal the dense table's step on the same loss
    indices = [torch.tensor([[12, 0, 5], [5, 6, 11]]), torch.tensor([[1, 12]])]
    weights = [torch.randn(*i.shape, D, generator=torch.Generator().manual_seed(10 + p))
               for p, i in enumerate(indices)]
    (table(indices[rank]) * weights[rank]).sum().backward()
    dense = RowSparseTable(N, D)
    with torch.no_grad():
        dense.weight.copy_(full)
    step = RowWiseAdagrad([dense.weight], lr=LR)
    loss = sum((dense(i) * w).sum() for i, w in zip(indices, weights)) / world
    loss.backward()
    step.step()
    want = dense.weight.detach()[start:stop]
    found['step_max_error'] = (table.local_rows() - want).abs().max().item()
    # resuming: a table restored from this process's state takes the same next step
    saved = table.local_state()
    restored = ShardedTable(N, D, lr=LR)
    restored.load_local_state_(saved)
    again = torch.tensor([[0, 12, 7]]) if rank == 0 else torch.tensor([[12, 3]])
    for t in (table, restored):
        (t(again) * 2.0).sum().backward()
    found['resumed_equal'] = torch.equal(table.local_rows(), restored.local_rows())
    found['accumulator_moved'] = not torch.equal(saved['accumulator'], table.local_state()[
        'accumulator'])
    try:
        restored.load_local_state_({**saved, 'start': saved['start'] + 1}, 'rank.pt')
        found['mismatch'] = None
    except ValueError as e:
        found['mismatch'] = str(e)
    with torch.no_grad():  # back to the state the dense reference below is compared with
        table.load_local_state_(saved)
    gathered = table.gathered_rows(dst=0)
    found['gathered'] = (None if gathered is None else
                         (gathered - dense.weight.detach()).abs().max().item())
    found['untouched_unchanged'] = torch.equal(table.local_rows()[
        [r - start for r in range(start, stop) if r not in (0, 1, 5, 6, 11, 12)]],
        full[[r for r in range(start, stop) if r not in (0, 1, 5, 6, 11, 12)]])
    # initialisation: every process keeps its rows of one table drawn chunk by chunk
    torch.manual_seed(3)
    table.initialize_(torch.nn.init.normal_)
    torch.manual_seed(3)
    drawn = torch.cat([torch.nn.init.normal_(torch.empty(min(CHUNK_ROWS, N - f), D))
                       for f in range(0, N, CHUNK_ROWS)])
    found['initialize'] = torch.equal(table.local_rows(), drawn[start:stop])
    # a whole table's weight (a consolidated checkpoint's): this process's rows of it, with
    # their slice of its accumulator, or the accumulator kept where it has none
    other, sums = whole(seed=5), torch.arange(N, dtype=torch.float)
    kept = table.local_state()['accumulator']
    table.load_entries_({'weight': other})
    found['whole_rows'] = torch.equal(table.local_rows(), other[start:stop])
    found['whole_kept_accumulator'] = torch.equal(table.local_state()['accumulator'], kept)
    table.load_entries_({'weight': other, 'accumulator': sums})
    found['whole_accumulator'] = torch.equal(table.local_state()['accumulator'], sums[start:stop])
    try:
        table.load_entries_({'weight': other[:-1]})
        found['whole_wrong_shape'] = None
    except ValueError as e:
        found['whole_wrong_shape'] = str(e)
    report_and_exit(out, found)


if __name__ == '__main__':
    main(sys.argv[1])
