"""Training with the entity table sharded over 2 CPU processes (Gloo, under
torchrun): the table steps itself (TorchRec's fused row-wise Adagrad), the
trainer's optimiser and DDP leave it out, and the data-parallel parameters
stay in step. The sharded step itself is checked against the dense table in
tests/nn/test_sharded_table.py."""

import pytest

from tests.helpers.torchrun import worker_reports


def test_a_run_trains_with_its_table_sharded_over_two_processes(tmp_path):
    pytest.importorskip('torchrec', reason='the distributed extra (make install-distributed)')
    found = worker_reports('sharded_training_worker.py', tmp_path, timeout=300)
    assert [f['range'] for f in found] == [[0, 100], [100, 200]]
    for f in found:
        assert f['fused'] == ['entity_emb.collection.embeddings.entity.weight']
        assert f['table_not_in_adam'] and f['replicas_equal'] and f['replicas_moved']
        assert f['rows_moved'] > 0.8 * f['rows_held']  # the rows the steps read, updated
        losses = f['losses']
        assert len(losses) == 3 and losses[2] < losses[0]
