r"""Missing facts from a trained model, in Python: :func:`predict` ranks the
candidate tails of ``(head, relation, ?)`` (or heads of ``(?, relation,
tail)``) and returns them by name with their scores and whether each triple
is already known (in train, valid or test), in the spirit of PyKEEN's
``predict_target``; :func:`modality_weights` gives ReDAF's weights
:math:`w_m` of entities under a relation, labelled by modality.

.. code-block:: python

    from native_pyg import predict

    table = predict('runs/mkgy/model.pt', head='Libreville', relation='isLocatedIn', k=5)
    print(table)                 # rank, score, entity, known
    table.rows[0].entity         # the best tail's name
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from native_pyg.data.readers import shown
from native_pyg.data.schema import ENTITY, split_triples
from native_pyg.nn import NativE
from native_pyg.nn.modes import evaluating

#: an id as a user types it: ASCII digits, optionally negative (refused as out of range)
_ID = re.compile(r'-?[0-9]+')
def _nfc(text: str) -> str:
    return unicodedata.normalize('NFC', text)


def resolve(kind: str, value: Union[str, int], names: Sequence[str]) -> int:
    """The id of an entity or relation given by name or id. Names are
    compared in Unicode normal form NFC (a name typed as NFD matches);
    suggestions for an unknown name are found case-insensitively.

    Raises:
        ValueError: One line: an id out of range, or an unknown name (shown
            shortened) with the closest names.
    """
    import difflib
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{kind}: expected a name or an id, got {type(value).__name__}")
    if _ID.fullmatch(value) and value not in names:
        i = int(value)
        if not 0 <= i < len(names):
            raise ValueError(f"{kind} id {i} is outside [0, {len(names)})")
        return i
    wanted = _nfc(value)
    for i, name in enumerate(names):
        if name == value or _nfc(name) == wanted:
            return i
    folded: Dict[str, str] = {}
    for name in names:
        folded.setdefault(_nfc(name).casefold(), name)
    close = difflib.get_close_matches(wanted[:200].casefold(), list(folded), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(folded[c]) for c in close)}?" if close else ''
    raise ValueError(f"unknown {kind} {shown(value)}{hint}")


@dataclass
class Prediction:
    """One candidate: its ``rank`` (1 = best), ``score``, ``entity`` name
    and ``id``, and ``known``: the split already holding the triple
    (``'train'``, ``'valid'``, ``'test'``) or ``None``."""
    rank: int
    score: float
    entity: str
    id: int
    known: Optional[str]


@dataclass
class Predictions:
    """The ranked candidates of one query ``(head, relation, tail)`` with
    ``'?'`` at the predicted side; ``str()`` is a table (rank, score,
    entity, the split holding the triple)."""
    query: Tuple[str, str, str]
    rows: List[Prediction]

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def new(self) -> List[Prediction]:
        """The candidates whose triple no split holds: proposed missing facts."""
        return [p for p in self.rows if p.known is None]

    def to_dicts(self) -> List[Dict[str, object]]:
        """The rows as plain dicts (e.g. for ``pandas.DataFrame``)."""
        return [dict(p.__dict__) for p in self.rows]

    def __str__(self) -> str:
        side = 'tails' if self.query[2] == '?' else 'heads'
        lines = [f"top {len(self.rows)} {side} for ({', '.join(self.query)})"]
        lines += [f"{p.rank:>4}  {p.score:>10.4f}  {p.entity}"
                  + (f"  (in {p.known})" if p.known else '') for p in self.rows]
        return '\n'.join(lines)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(query={self.query}, k={len(self.rows)})'


def model_and_data(model_or_run, data):
    """``(model, data)`` of a checkpoint path, a restored or pipeline run, or
    a model with its ``data``."""
    if isinstance(model_or_run, str):
        from native_pyg.pipeline import load_run
        model_or_run = load_run(model_or_run, data=data)
    if isinstance(model_or_run, NativE):
        if data is None:
            raise ValueError("predict(model, ...) needs the graph it was trained on: data=...")
        return model_or_run, data
    model, found = getattr(model_or_run, 'model', None), getattr(model_or_run, 'data', None)
    if not isinstance(model, NativE) or found is None:
        raise ValueError(f"expected a checkpoint path, a NativE with data=, or a run "
                         f"(load_run, pipeline), got {type(model_or_run).__name__}")
    return model, found if data is None else data


def _known(data, relation: int, fixed: int, predict_tail: bool) -> Dict[int, str]:
    """``{candidate: split}`` of the triples the splits hold for the query."""
    out: Dict[int, str] = {}
    for split in ('test', 'valid', 'train'):  # train wins: the earliest split named
        t = split_triples(data, split)
        side, other = (0, 2) if predict_tail else (2, 0)
        hit = (t[:, 1] == relation) & (t[:, side] == fixed)
        out.update({int(c): split for c in t[hit, other].tolist()})
    return out


def predict(model_or_run, head: Union[str, int, None] = None,
            relation: Union[str, int, None] = None, tail: Union[str, int, None] = None,
            k: int = 10, data=None, exclude_known: bool = False) -> Predictions:
    r"""The ``k`` best tails of ``(head, relation, ?)``, or heads of ``(?,
    relation, tail)``, by the model's score :math:`S(h, r, t)`.

    Args:
        model_or_run: A checkpoint path (``model.pt``), a
            :class:`~native_pyg.pipeline.LoadedRun` or
            :class:`~native_pyg.pipeline.PipelineResult`, or a
            :class:`~native_pyg.nn.NativE` with ``data``.
        head, tail (str or int): The entity given, by name or id: exactly
            one of them.
        relation (str or int): The relation, by name or id.
        k (int): How many candidates (at most every entity). (default: :obj:`10`)
        data (HeteroData, optional): The graph the model was trained on.
        exclude_known (bool): Leave out candidates whose triple a split
            already holds, keeping ``k`` new ones. (default: :obj:`False`)

    Raises:
        ValueError: One line: not exactly one of ``head`` and ``tail``, an
            unknown name or id, ``k < 1``.
    """
    if (head is None) == (tail is None):
        raise ValueError("give exactly one of head= (predict tails) or tail= (predict heads)")
    if relation is None:
        raise ValueError("relation= is needed")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive number of predictions, got {k!r}")
    model, data = model_and_data(model_or_run, data)
    names = list(data[ENTITY].name) + list(model.added_entity_names)
    rels = list(data.relation_names)
    r = resolve('relation', relation, rels)
    predict_tail = head is not None
    e = resolve('entity', head if predict_tail else tail, names)
    with evaluating(model), torch.no_grad():
        device = next(model.parameters()).device
        ei, ri = torch.tensor([e], device=device), torch.tensor([r], device=device)
        scores = (model.score_tails(ei, ri) if predict_tail else
                  model.score_heads(ri, ei))[0].float().cpu()
    known = _known(data, r, e, predict_tail)
    if exclude_known and known:
        scores[torch.tensor(sorted(known))] = float('-inf')
    k = min(k, scores.numel() - (len(known) if exclude_known else 0))
    top = scores.topk(max(k, 0))
    rows = [Prediction(rank, float(s), names[c], int(c), known.get(int(c)))
            for rank, (s, c) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1)]
    query = (names[e], rels[r], '?') if predict_tail else ('?', rels[r], names[e])
    return Predictions(query, rows)


def modality_weights(model_or_run, entities: Sequence[Union[str, int]],
                     relation: Union[str, int], data=None) -> Dict[str, Tensor]:
    r"""ReDAF's weights :math:`w_m` of ``entities`` under ``relation``,
    labelled: ``{modality: [len(entities)]}`` (``'structure'`` and the
    feature modalities; a structure-only model gives structure 1)."""
    model, data = model_and_data(model_or_run, data)
    names = list(data[ENTITY].name) + list(model.added_entity_names)
    ids = torch.tensor([resolve('entity', e, names) for e in entities])
    r = resolve('relation', relation, list(data.relation_names))
    with evaluating(model), torch.no_grad():
        device = next(model.parameters()).device
        w = model.modality_weights(ids.to(device), r).cpu()
    labels = model.modality_names  # ['structure'] alone without fusion
    return {m: w[:, i] for i, m in enumerate(labels)}
