"""One process of tests/evaluation/test_sharded_evaluation.py, under
torchrun (2 processes, Gloo): a model whose entity table is sharded, ranked
by the sharded streamed evaluator, against the same model with a dense
table ranked by the full and the streamed evaluators on one process;
writes what it found to OUT/rank<r>.json."""
import sys

import torch
import torch.distributed as dist

from native_pyg.data.schema import split_triples
from native_pyg.datasets.synthetic import generate_synthetic_mmkg
from native_pyg.evaluation import (LinkPredictionEvaluator, ShardedStreamingEvaluator,
                                   StreamingLinkPredictionEvaluator)
from native_pyg.nn import NativE
from native_pyg.nn.sharded_table import ShardedTable
from tests.helpers.torchrun import report_and_exit


def main(out):
    dist.init_process_group('gloo')
    data = generate_synthetic_mmkg(num_entities=41, num_relations=3, seed=0)  # shards 21 + 20
    triples = torch.cat([split_triples(data, 'valid'), split_triples(data, 'test')])
    found = {}
    for name, modalities in (('multimodal', None), ('structure', [])):
        dense = NativE.from_data(data, hidden_channels=8, seed=0, modalities=modalities)
        with torch.no_grad():  # two entities with the same rows: exact ties across the shards
            dense.entity_emb.weight[30] = dense.entity_emb.weight[3]
        table = ShardedTable(41, dense.entity_dim)
        sharded = NativE.from_data(data, hidden_channels=8, seed=0, table=table,
                                   modalities=modalities)
        sharded.load_state_dict(dense.state_dict())  # a whole table's weight: its rows here
        found['range'] = list(table.row_range)
        for ties in ('realistic', 'optimistic'):
            # 5 candidates a chunk: 5 chunks on rank 0, 4 and one empty lookup on rank 1
            evaluator = ShardedStreamingEvaluator.from_data(data, candidate_chunk=5, ties=ties)
            got = torch.stack(evaluator.ranks(sharded, triples))
            want = torch.stack(LinkPredictionEvaluator.from_data(data, ties=ties).ranks(
                dense, triples))
            streamed = torch.stack(StreamingLinkPredictionEvaluator.from_data(
                data, candidate_chunk=5, ties=ties).ranks(dense, triples))
            found[f'{name}-{ties}'] = {'equal_full': torch.equal(got, want),
                                       'equal_streamed': torch.equal(got, streamed),
                                       'mean_rank': got.mean().item()}
    found['metrics'] = ShardedStreamingEvaluator.from_data(data).evaluate(sharded, triples)['both']
    found['dense_metrics'] = LinkPredictionEvaluator.from_data(data).evaluate(dense,
                                                                             triples)['both']
    found['queries'] = int(triples.size(0))
    report_and_exit(out, found)


if __name__ == '__main__':
    main(sys.argv[1])
