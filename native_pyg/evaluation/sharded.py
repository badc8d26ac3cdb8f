r"""The streamed protocol over an entity table sharded row-wise
(:class:`ShardedStreamingEvaluator`): each process scores the candidates
whose rows it holds, and the filtered rank of a target is the sum over the
processes of its better and tied candidates.

With :math:`C_p` the candidates of process :math:`p` and :math:`s^*` the
target's score,

.. math::
    \operatorname{rank} = 1 + \sum_p \big|\{c \in C_p \setminus F :
    s_c > s^*\}\big| \quad (\text{plus ties by the tie rule}),

where :math:`F` holds the other known answers; the counts are combined
with one ``all_reduce``. No process ever holds the whole table."""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import torch
import torch.distributed as dist

from native_pyg.evaluation.streamed import StreamingLinkPredictionEvaluator
from native_pyg.nn.sharded_table import collective_device

__all__ = ['ShardedStreamingEvaluator']

#: near candidates kept per query block by default (the streamed evaluator's window)
WINDOW_LIMIT = 4096
#: candidates a process streams at a time by default
CANDIDATE_CHUNK = 16384


class ShardedStreamingEvaluator(StreamingLinkPredictionEvaluator):
    r"""The ranks of :class:`~native_pyg.evaluation.StreamingLinkPredictionEvaluator`
    for a model whose entity table is sharded over the processes of
    ``group`` (``model.entity_emb.row_range``, e.g. a
    :class:`~native_pyg.nn.sharded_table.ShardedTable`).

    Every process ranks every query: the queries and their targets are
    fused once on each (their rows looked up from where they are held), then
    each process streams only the candidates it holds, in chunks, the same
    number of chunks on every process (a table lookup is a collective).
    The target's score is the one it gets as a candidate on the process
    that holds it, shared with the others before their counts are settled
    (the window of near scores corrects them, as across chunks); the four
    counts per query (greater, tied, and of those the filtered answers) are
    then summed over the processes (see the module's description), so the
    ranks equal the single-process evaluator's.

    Args:
        num_entities (int): Number of entities :math:`N` (candidates).
        known_triples (torch.Tensor): ``[E, 3]`` known true triples.
        group (ProcessGroup, optional): The processes that share the
            table. (default: the default group)
        **kwargs: The other
            :class:`~native_pyg.evaluation.StreamingLinkPredictionEvaluator`
            arguments.
    """
    model_api = StreamingLinkPredictionEvaluator.model_api + ('entity_emb',)
    #: every process ranks every query (their candidates differ)
    ranks_every_query = True

    def __init__(self, num_entities: int, known_triples: torch.Tensor,
                 group: Optional[Any] = None, **kwargs):
        # a process keeps the near candidates of every query whose target another process
        # holds, over its whole stream: fewer per block (beyond them, a second stream)
        kwargs.setdefault('window_limit', WINDOW_LIMIT)
        # a shard of millions of rows streams in more, smaller chunks: what a chunk holds
        # (its rows' scores against every query) stays small beside the shard
        kwargs.setdefault('candidate_chunk', CANDIDATE_CHUNK)
        super().__init__(num_entities, known_triples, **kwargs)
        if not dist.is_initialized():
            raise RuntimeError("a sharded evaluation needs a torch.distributed process group")
        self.group = group or dist.group.WORLD
        self.device = collective_device(self.group)  # NCCL: the process's GPU

    def _candidate_spans(self, model: Any, width: int) -> List[Tuple[int, int]]:
        start, stop = model.entity_emb.row_range
        stop = min(stop, self.num_entities)  # entities added after training are not candidates
        mine = -(-max(stop - start, 0) // width)
        count = torch.tensor([mine], device=self.device)
        dist.all_reduce(count, op=dist.ReduceOp.MAX, group=self.group)
        spans = [(lo, min(lo + width, stop)) for lo in range(start, stop, width)]
        return spans + [(stop, stop)] * (int(count) - mine)

    def _share_targets(self, blocks) -> None:
        if not blocks:
            return
        exact = torch.cat([b.exact for b in blocks])
        seen = torch.cat([b.seen for b in blocks]).to(exact.dtype)
        world = dist.get_world_size(self.group)
        exacts = [torch.empty_like(exact) for _ in range(world)]
        seens = [torch.empty_like(seen) for _ in range(world)]
        dist.all_gather(exacts, exact, group=self.group)
        dist.all_gather(seens, seen, group=self.group)
        seens = torch.stack(seens)
        holder = seens.argmax(dim=0)  # the process that met each target
        shared = torch.stack(exacts).gather(0, holder.view(1, -1)).view(-1)
        met = seens.amax(dim=0) > 0
        for block, part, was_met in zip(blocks, shared.split([b.exact.numel() for b in blocks]),
                                        met.split([b.exact.numel() for b in blocks])):
            block.exact.copy_(part)
            block.seen.copy_(was_met)

    def _agreed(self, blocks, redo: List[bool]) -> List[bool]:
        flags = torch.tensor(redo, dtype=torch.long, device=self.device)
        if flags.numel():
            dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.group)
        again = [bool(f) for f in flags.tolist()]
        for block, once_more in zip(blocks, again):
            if once_more:  # streamed again against the shared scores, on every process
                block.score = block.exact.clone()
        return again

    def _totals(self, blocks) -> None:
        if not blocks:
            return
        counts = torch.cat([b.counts for b in blocks], dim=1)
        dist.all_reduce(counts, group=self.group)
        for block, part in zip(blocks, counts.split([b.counts.size(1) for b in blocks], dim=1)):
            block.counts.copy_(part)

    def describe(self) -> str:
        return (f'{self.protocol}, sharded over {dist.get_world_size(self.group)} processes, '
                f'{self.ties} ties')
