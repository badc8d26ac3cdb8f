r"""The missing facts a model proposes, as a table (``native-pyg complete``,
:func:`complete`).

For every query :math:`(h, r, ?)` of the given relations and heads, the
``k`` tails of highest score :math:`S(h, r, t)` among the triples no split
holds (train, valid and test are all known facts), written one proposal a
row to a TSV file::

    head  relation  tail  score  rank  w_structure  w_image  w_text ...

with ReDAF's weights :math:`w_m` of the proposed tail under :math:`r` as
the evidence (which modalities the proposal rests on). Queries are scored
a batch of heads at a time against chunks of :data:`CANDIDATE_CHUNK`
candidates (their feature rows read for that chunk only, so a model whose
features lie in a disk store never holds them whole), with a progress bar. The file grows a batch at a
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
from native_pyg.kernels.runtime import Runtime
from native_pyg.nn.layerwise import entities_encoded_once
from native_pyg.nn.modes import evaluating
from native_pyg.prediction import model_and_data, resolve
from native_pyg.training.checkpoint import write_text_atomically

#: the largest score matrix of one batch of queries against one candidate chunk, in bytes
SCORE_BYTES = 2 ** 28
#: candidates embedded and scored at a time (their feature rows read for them only)
CANDIDATE_CHUNK = 65536


class KnownTails:
    r"""The tails every split holds for each ``(head, relation)``, looked
    up a batch of queries at a time (sorted keys :math:`h \cdot R + r`)."""

    def __init__(self, data):
        triples = torch.cat([split_triples(data, s) for s in SPLITS])
        self.num_relations = int(data.num_relations)
        keys = triples[:, 0] * self.num_relations + triples[:, 1]
        self.keys, order = keys.sort()
        self.tails = triples[order, 2]

    def pairs(self, heads: Tensor, relation: int):
        """``(rows, tails)``: for each head of ``heads`` (its position in
        ``rows``) the tails the splits hold under ``relation``."""
        keys = heads * self.num_relations + relation
        lo = torch.searchsorted(self.keys, keys)
        counts = torch.searchsorted(self.keys, keys, right=True) - lo
        rows = torch.repeat_interleave(torch.arange(heads.numel()), counts)
        starts = torch.repeat_interleave(lo - torch.cumsum(counts, 0) + counts, counts)
        return rows, self.tails[starts + torch.arange(int(counts.sum()))]


def _signature(checkpoint: str, relations: List[int], heads: Optional[List[int]],
               k: int) -> Dict[str, object]:
    return {'checkpoint': osp.abspath(checkpoint) if isinstance(checkpoint, str) else None,
            'relations': relations, 'heads': heads, 'k': k}


def complete(model_or_run, relations: Sequence[Union[str, int]], out: str,
             heads: Optional[Sequence[Union[str, int]]] = None, k: int = 10, data=None,
             progress: bool = True, batch_size: Optional[int] = None,
             source: Optional[str] = None, compile: bool = False) -> str:
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
        compile (bool): Score by compiled distance kernels
            (:class:`~native_pyg.kernels.runtime.Runtime`).

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
    batch = batch_size or max(1, min(query_heads.numel(),
                                     SCORE_BYTES // (4 * min(n, CANDIDATE_CHUNK) + 4 * k)))
    progress_path = f'{out}.progress.json'
    signature = _signature(source, rel_ids, head_ids, k)
    done = _resume_point(out, progress_path, signature)
    known = KnownTails(data)
    labels = model.modality_names  # ['structure'] alone without fusion
    header = '\t'.join(['head', 'relation', 'tail', 'score', 'rank',
                        *(f'w_{m}' for m in labels)]) + '\n'
    device = next(model.parameters()).device
    bar = tqdm(total=total, initial=done, desc='completing', unit='query', unit_scale=True,
               disable=None if progress else True)
    try:
        with open(out, 'a', encoding='utf-8') as f, evaluating(model), torch.no_grad(), \
                entities_encoded_once(model, CANDIDATE_CHUNK), Runtime(compile=compile):
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
    os.remove(progress_path)  # finished: the table is whole
    return out


def _proposals(model, known: KnownTails, heads: Tensor, r: int, k: int, n: int, device,
               names: List[str], rels: List[str]) -> str:
    """The TSV rows of one batch of queries ``(heads, r, ?)``."""
    values, tails = top_new_tails(model, known, heads, r, k, n, device)
    weights = model.modality_weights(tails.reshape(-1).to(device), r).float().cpu()
    out = []
    for i, head in enumerate(heads.tolist()):
        for j in range(k):
            score = float(values[i, j])
            if score == float('-inf'):  # fewer than k new tails exist
                break
            w = weights[i * k + j].tolist()
            out.append('\t'.join([names[head], rels[r], names[int(tails[i, j])],
                                  f'{score:.6g}', str(j + 1), *(f'{x:.4f}' for x in w)]))
    return ''.join(line + '\n' for line in out)


def top_new_tails(model, known: KnownTails, heads: Tensor, r: int, k: int, n: int, device,
                  chunk: int = CANDIDATE_CHUNK):
    r"""``(scores [B, k], tails [B, k])``: the ``k`` best tails of each
    ``(h, r, ?)`` that no split holds, scored a chunk of ``chunk``
    candidates at a time (their feature rows read for that chunk only, as
    the streamed evaluation does) and merged into a running top-``k``."""
    b = heads.numel()
    emb, mask, (iq,) = model.embed_entities(heads.to(device))
    rel = torch.full((b,), r, dtype=torch.long, device=device)
    query = model.fuse(emb, mask, rel, iq)
    rel_emb = model.relation_embedding(rel)
    del emb, mask
    rows, cols = known.pairs(heads, r)
    best = torch.full((b, k), float('-inf'))
    best_ids = torch.zeros((b, k), dtype=torch.long)
    for start in range(0, n, chunk):
        end = min(start + chunk, n)
        e, m, _ = model.embed_entities(torch.arange(start, end, device=device))
        candidates = model.fuse(e, m, torch.tensor(r, device=device))
        scores = model.scorer.score_tails(query, rel_emb, candidates).float().cpu()
        inside = (cols >= start) & (cols < end)
        scores[rows[inside], cols[inside] - start] = float('-inf')
        # the chunk's own top k first: only [B, 2k] are merged, never a copy of the chunk
        values, at = scores.topk(min(k, scores.size(1)), dim=1)
        del scores
        merged = torch.cat([best, values], 1)
        ids = torch.cat([best_ids, at + start], 1)
        best, at = merged.topk(min(k, merged.size(1)), dim=1)
        best_ids = ids.gather(1, at)
    return best, best_ids


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
