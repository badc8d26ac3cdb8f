"""Training with the entity table sharded over 2 CPU processes (Gloo, under
torchrun): the table steps itself (TorchRec's fused row-wise Adagrad), the
trainer's optimiser and DDP leave it out, and the data-parallel parameters
stay in step. The sharded step itself is checked against the dense table in
tests/nn/test_sharded_table.py."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_a_run_trains_with_its_table_sharded_over_two_processes(tmp_path):
    pytest.importorskip('torchrec', reason='the distributed extra (make install-distributed)')
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1'}
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                           '--nproc_per_node', '2', str(REPO / 'tests' / 'helpers' /
                                                        'sharded_training_worker.py'),
                           str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env=env, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2)]
    assert [f['range'] for f in found] == [[0, 100], [100, 200]]
    for f in found:
        assert f['fused'] == ['entity_emb.collection.embeddings.entity.weight']
        assert f['table_not_in_adam'] and f['replicas_equal'] and f['replicas_moved']
        assert f['rows_moved'] > 0.8 * f['rows_held']  # the rows the steps read, updated
        losses = f['losses']
        assert len(losses) == 3 and losses[2] < losses[0]
