r"""The missing facts a model proposes, as a table (``native-pyg complete``,
:func:`complete`).

For every query :math:`(h, r, ?)` of the given relations and heads, the
``k`` tails of highest score :math:`S(h, r, t)` among the triples no split
holds (train, valid and test are all known facts), written one proposal a
row to a TSV file::

    head  relation  tail  score  rank  w_structure  w_image  w_text ...

with ReDAF's weights :math:`w_m` of the proposed tail under :math:`r` as
the evidence (which modalities the proposal rests on). Queries are scored
a batch of heads at a time (a batch's score matrix is at most
:data:`SCORE_BYTES`), with a progress bar. The file grows a batch at a
time; ``OUT.progress.json`` beside it records how far it is, so a killed
run continues where it stopped (the rows of a batch cut short are dropped
first) and produces the same file as an uninterrupted one. A finished file
is never overwritten.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor

from native_pyg.data.schema import ENTITY, SPLITS, split_triples
from native_pyg.prediction import model_and_data, resolve
from native_pyg.training.checkpoint import write_text_atomically

#: the largest score matrix of one batch of queries, in bytes
SCORE_BYTES = 2 ** 28


class KnownTails:
    r"""The tails every split holds for each ``(head, relation)``, looked
    up a batch of queries at a time (sorted keys :math:`h \cdot R + r`)."""

    def __init__(self, data):
        triples = torch.cat([split_triples(data, s) for s in SPLITS])
        self.num_relations = int(data.num_relations)
        keys = triples[:, 0] * self.num_relations + triples[:, 1]
        self.keys, order = keys.sort()
        self.tails = triples[order, 2]

    def mask(self, heads: Tensor, relation: int, scores: Tensor) -> None:
        """Sets the scores of known tails to ``-inf``, in place (``scores``
        ``[B, N]``, one row per head)."""
        keys = heads * self.num_relations + relation
        lo = torch.searchsorted(self.keys, keys)
        hi = torch.searchsorted(self.keys, keys, right=True)
        counts = hi - lo
        if int(counts.sum()) == 0:
            return
        rows = torch.repeat_interleave(torch.arange(heads.numel()), counts)
        starts = torch.repeat_interleave(lo - torch.cumsum(counts, 0) + counts, counts)
        index = starts + torch.arange(int(counts.sum()))
        scores[rows, self.tails[index]] = float('-inf')


def _signature(checkpoint: str, relations: List[int], heads: Optional[List[int]],
               k: int) -> Dict[str, object]:
    return {'checkpoint': osp.abspath(checkpoint) if isinstance(checkpoint, str) else None,
            'relations': relations, 'heads': heads, 'k': k}


def complete(model_or_run, relations: Sequence[Union[str, int]], out: str,
             heads: Optional[Sequence[Union[str, int]]] = None, k: int = 10, data=None,
             progress: bool = True, batch_size: Optional[int] = None,
             source: Optional[str] = None) -> str:
    r"""Writes the ``k`` best new tails of every ``(head, relation, ?)`` to
    the TSV ``out`` (module docstring) and returns its path.

    Args:
        model_or_run: A checkpoint path, a restored or pipeline run, or a
            :class:`~native_pyg.nn.NativE` with ``data``.
        relations (list[str or int]): The relations, by name or id.
        out (str): The TSV file (new, or one a killed run left unfinished).
        heads (list[str or int], optional): The heads, by name or id.
            (default: every entity)
        k (int): Proposals per query. (default: :obj:`10`)
        data (HeteroData, optional): The graph the model was trained on.
        progress (bool): A progress bar over the queries.
        batch_size (int, optional): Heads scored at once (default: as many
            as :data:`SCORE_BYTES` of scores allow).
        source (str, optional): The checkpoint's path, when ``model_or_run``
            was restored from one (a resumed table must come from it).

    Raises:
        ValueError: One line: an unknown name, ``k < 1``, or ``out`` holds
            a finished table or one of another request.
    """
    from tqdm.auto import tqdm
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive number of proposals, got {k!r}")
    if not relations:
        raise ValueError("give at least one relation")
    source = model_or_run if isinstance(model_or_run, str) else source
    model, data = model_and_data(model_or_run, data)
    names = list(data[ENTITY].name)
    rels = list(data.relation_names)
    rel_ids = [resolve('relation', r, rels) for r in relations]
    head_ids = None if heads is None else [resolve('entity', h, names) for h in heads]
    n = len(names)
    k = min(k, n)
    query_heads = torch.arange(n) if head_ids is None else torch.tensor(head_ids)
    total = len(rel_ids) * query_heads.numel()
    batch = batch_size or max(1, min(query_heads.numel(), SCORE_BYTES // (4 * n)))
    progress_path = f'{out}.progress.json'
    signature = _signature(source, rel_ids, head_ids, k)
    done = _resume_point(out, progress_path, signature)
    known = KnownTails(data)
    labels = model.modality_names if model.fusion is not None else ['structure']
    header = '\t'.join(['head', 'relation', 'tail', 'score', 'rank',
                        *(f'w_{m}' for m in labels)]) + '\n'
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    bar = tqdm(total=total, initial=done, desc='completing', unit='query', unit_scale=True,
               disable=None if progress else True)
    try:
        with open(out, 'a', encoding='utf-8') as f, torch.no_grad():
            if f.tell() == 0:  # a new table: its header, recorded before any row
                f.write(header)
                f.flush()
                _record(progress_path, signature, 0, f.tell())
            position = 0
            for r in rel_ids:
                for start in range(0, query_heads.numel(), batch):
                    h = query_heads[start:start + batch]
                    if position + h.numel() <= done:  # written before the run was stopped
                        position += h.numel()
                        continue
                    rows = _proposals(model, known, h, r, k, n, device, names, rels)
                    f.write(rows)
                    f.flush()
                    os.fsync(f.fileno())
                    position += h.numel()
                    _record(progress_path, signature, position, f.tell())
                    bar.update(h.numel())
    finally:
        bar.close()
        model.train(was_training)
    os.remove(progress_path)  # finished: the table is whole
    return out


def _proposals(model, known: KnownTails, heads: Tensor, r: int, k: int, n: int, device,
               names: List[str], rels: List[str]) -> str:
    """The TSV rows of one batch of queries ``(heads, r, ?)``."""
    rel = torch.full_like(heads, r)
    scores = model.score_tails(heads.to(device), rel.to(device)).float().cpu()
    known.mask(heads, r, scores)
    top = scores.topk(k, dim=1)
    tails = top.indices.reshape(-1)
    weights = model.modality_weights(tails.to(device), r).float().cpu()
    out = []
    values = top.values.tolist()
    for i, head in enumerate(heads.tolist()):
        for j in range(k):
            score = values[i][j]
            if score == float('-inf'):  # fewer than k new tails exist
                break
            w = weights[i * k + j].tolist()
            out.append('\t'.join([names[head], rels[r], names[int(top.indices[i, j])],
                                  f'{score:.6g}', str(j + 1), *(f'{x:.4f}' for x in w)]))
    return ''.join(line + '\n' for line in out)


def _resume_point(out: str, progress_path: str, signature: Dict[str, object]) -> int:
    """Queries already written to ``out`` by a run of the same request that
    was stopped (its cut-short rows dropped), or 0 for a new file."""
    if not osp.exists(out):
        if osp.exists(progress_path):
            os.remove(progress_path)  # a record without its table
        return 0
    if not osp.exists(progress_path):
        raise ValueError(f"{out}: exists; choose a new path (a finished table is never "
                         f"overwritten)")
    try:
        with open(progress_path) as f:
            record = json.load(f)
        if record['request'] != json.loads(json.dumps(signature)):
            raise ValueError(f"{out}: a run for another request (relations, heads, k or "
                             f"checkpoint) left it unfinished; choose a new path")
        size, done = int(record['bytes']), int(record['done'])
    except (OSError, ValueError, KeyError, TypeError) as e:
        if isinstance(e, ValueError) and str(e).startswith(out):
            raise
        raise ValueError(f"{progress_path}: not a progress record of native-pyg complete; "
                         f"move it and {out} away") from None
    with open(out, 'r+b') as f:  # rows written after the last record: written again
        f.truncate(size)
    return done


def _record(path: str, signature: Dict[str, object], done: int, size: int) -> None:
    write_text_atomically(path, json.dumps({'request': signature, 'done': done,
                                            'bytes': size}))
