"""native_pyg/nn/sharded_table.py: the entity table sharded row-wise over 2
CPU processes (Gloo, under torchrun) with TorchRec, against the dense table:
lookups, per-row mean squares, one fused row-wise Adagrad step, the
initialisation, a restored state's next step and the table gathered whole
on one process."""
import sys

import pytest

from tests.helpers.torchrun import worker_reports


def test_without_torchrec_a_sharded_table_is_one_line_naming_the_install(monkeypatch):
    from native_pyg.nn import sharded_table
    monkeypatch.setitem(sys.modules, 'torchrec', None)
    with pytest.raises(ImportError, match=r'^a sharded entity table needs TorchRec and FBGEMM: '
                                          r'make install-distributed'):
        sharded_table.ShardedTable(10, 4)


def test_two_processes_each_hold_their_rows_and_agree_with_the_dense_table(tmp_path):
    pytest.importorskip('torchrec', reason='the distributed extra (make install-distributed)')
    found = worker_reports('sharded_table_worker.py', tmp_path, timeout=240)
    assert [f['range'] for f in found] == [[0, 7], [7, 13]]
    for f in found:
        assert f['holds_only_its_rows'] and f['lookup'] and f['row_mean_squares']
        assert f['whole_refused'] and f['untouched_unchanged'] and f['initialize']
        assert f['step_max_error'] < 1e-6, f
        assert f['resumed_equal'] and f['accumulator_moved']
        assert f['mismatch'].startswith('rank.pt: rows ') and 'same number of processes' in \
            f['mismatch']
        assert f['whole_rows'] and f['whole_kept_accumulator'] and f['whole_accumulator']
        assert f['whole_wrong_shape'] == 'rows of shape [12, 4] for a table of 13 rows of size 4'
    # the consolidated table, on rank 0 only: the dense table after the same step
    assert found[0]['gathered'] < 1e-6 and found[1]['gathered'] is None
