"""Training with the entity table sharded over 2 CPU processes (Gloo, under
torchrun): the table steps itself (TorchRec's fused row-wise Adagrad), the
trainer's optimiser and DDP leave it out, and the data-parallel parameters
stay in step. The sharded step itself is checked against the dense table in
tests/nn/test_sharded_table.py."""
import json

import pytest

from tests.helpers.torchrun import REPO, torchrun


def test_a_run_trains_with_its_table_sharded_over_two_processes(tmp_path):
    pytest.importorskip('torchrec', reason='the distributed extra (make install-distributed)')
    proc = torchrun(str(REPO / 'tests' / 'helpers' / 'sharded_training_worker.py'), str(tmp_path),
                    timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2)]
    assert [f['range'] for f in found] == [[0, 100], [100, 200]]
    for f in found:
        assert f['fused'] == ['entity_emb.collection.embeddings.entity.weight']
        assert f['table_not_in_adam'] and f['replicas_equal'] and f['replicas_moved']
        assert f['rows_moved'] > 0.8 * f['rows_held']  # the rows the steps read, updated
        losses = f['losses']
        assert len(losses) == 3 and losses[2] < losses[0]
