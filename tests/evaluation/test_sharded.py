"""native_pyg/evaluation/sharded.py: ranks with the entity table sharded
over 2 CPU processes (Gloo, under torchrun), each streaming only the
candidates it holds, equal to the single-process full and streamed
evaluators on the same weights (ties across the shards included)."""

import pytest

from tests.helpers.torchrun import worker_reports


def test_sharded_ranks_equal_the_single_process_evaluators(tmp_path):
    pytest.importorskip('torchrec', reason='the distributed extra (make install-distributed)')
    found = worker_reports('sharded_evaluation_worker.py', tmp_path, timeout=240)
    assert [f['range'] for f in found] == [[0, 21], [21, 41]]
    for f in found:
        for case in ('multimodal', 'structure'):
            for ties in ('realistic', 'optimistic'):
                assert f[f'{case}-{ties}']['equal_full'], (case, ties, f)
                assert f[f'{case}-{ties}']['equal_streamed'], (case, ties, f)
        # the tied rows (entity 30 = entity 3) make the tie rules differ
        assert f['structure-realistic']['mean_rank'] != f['structure-optimistic']['mean_rank']
        assert f['metrics'] == f['dense_metrics'] and f['queries'] == 34
    assert found[0]['metrics'] == found[1]['metrics']  # every process reports the same
