"""One process of tests/training/test_sharded_table_training.py, under
torchrun (2 processes, Gloo): a run trained with its entity table sharded
(TorchRec's fused row-wise Adagrad) and the rest data-parallel; writes what
it found to OUT/rank<r>.json."""
import sys

import torch
import torch.distributed as dist

from native_pyg.config import RunConfig
from native_pyg.datasets.synthetic import generate_synthetic_mmkg
from native_pyg.nn import NativE
from native_pyg.nn.sharded_table import ShardedTable
from native_pyg.training import Trainer, setup_process
from native_pyg.training.optimizers import fused_parameters
from tests.helpers.torchrun import report_and_exit

SETS = ['model.hidden_channels=8', 'training.num_negatives=4', 'training.batch_size=128',
        'training.eval_every=0', 'training.epochs=3', 'training.progress=false',
        'training.table_optimizer=rowwise_adagrad', 'training.adversarial=false',
        'training.lr=0.01']


def main(out):
    dist.init_process_group('gloo')
    data = generate_synthetic_mmkg(num_entities=200, num_relations=4, seed=0)
    run = RunConfig().override(SETS)
    setup_process(run.training)
    table = ShardedTable(data['entity'].num_nodes, 16, lr=run.training.lr)
    model = NativE.from_data(data, hidden_channels=8, table=table, seed=0)
    before = table.local_rows().clone()
    start = torch.cat([p.detach().reshape(-1).clone() for name, p in model.named_parameters()
                       if not name.startswith('entity_emb.')])
    trainer = Trainer(model, data, run, out_dir=None)
    adam = {id(p) for group in trainer.optimizer.param_groups for p in group['params']}
    trainer.fit()
    # the data-parallel parameters: the same on both processes (DDP kept them in step)
    flat = torch.cat([p.detach().reshape(-1) for name, p in model.named_parameters()
                      if not name.startswith('entity_emb.')])
    both = [torch.empty_like(flat) for _ in range(2)]
    dist.all_gather(both, flat)
    moved = (table.local_rows() - before).abs().sum(dim=1) > 0
    found = {
        'range': list(table.row_range),
        'fused': fused_parameters(model),
        'table_not_in_adam': all(id(p) not in adam for p in table.parameters()),
        'replicas_equal': torch.equal(both[0], both[1]),
        'replicas_moved': not torch.equal(flat, start),
        'rows_moved': int(moved.sum()), 'rows_held': int(moved.numel()),
        'losses': [h['loss'] for h in trainer.history],
    }
    report_and_exit(out, found)


if __name__ == '__main__':
    main(sys.argv[1])
