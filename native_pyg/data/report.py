"""A data report of an MMKG: split sizes, the quirks of the released files
(duplicate rows, valid/test triples leaked from train, rows with entities
unseen in training), per-modality coverage and relation categories.

The quirks are reported, never hidden: :func:`clean_splits` removes them only
when asked to, and returns a new graph.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from native_pyg.data.relations import CATEGORIES, isin_sorted, relation_categories
from native_pyg.data.schema import (
    ENTITY,
    REL,
    SPLITS,
    SPLIT_PREFIX,
    modalities,
    seen_entities,
    split_triples,
)

#: the splits that can leak triples from (or hold entities unseen in) train
EVAL_SPLITS = ('valid', 'test')


def _triple_ids(parts: List[Tensor]) -> List[Tensor]:
    r"""One int64 key per row, equal keys for equal ``(h, r, t)`` rows across
    all ``parts``: :math:`h \cdot R N + r N + t` with ``R``, ``N`` one past the
    largest relation and entity id, or compact ids from ``torch.unique`` over
    rows where that key would overflow int64."""
    sizes = [p.size(0) for p in parts]
    rows = torch.cat([p.long() for p in parts], dim=0)
    if rows.numel() == 0:
        return [torch.empty(0, dtype=torch.long) for _ in parts]
    num_rel = int(rows[:, 1].max()) + 1
    num_ent = int(torch.maximum(rows[:, 0].max(), rows[:, 2].max())) + 1
    if num_ent * num_ent * num_rel < 2**63:
        keys = (rows[:, 0] * num_rel + rows[:, 1]) * num_ent + rows[:, 2]
    else:
        _, keys = torch.unique(rows, dim=0, return_inverse=True)
    return list(keys.split(sizes))


def _isin(keys: Tensor, pool: Tensor) -> Tensor:
    return isin_sorted(keys, torch.unique(pool))


def _first_occurrence(ids: Tensor) -> Tensor:
    """Bool mask of the rows that are the first occurrence of their id."""
    if ids.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    _, inverse = torch.unique(ids, return_inverse=True)
    position = torch.arange(ids.numel())
    first = torch.full((int(inverse.max()) + 1, ), ids.numel(), dtype=torch.long)
    first = first.scatter_reduce(0, inverse, position, reduce='amin')
    return first[inverse] == position


def quirk_counts(data: HeteroData) -> Dict[str, Dict[str, int]]:
    r"""Counts the quirks of the splits of ``data``.

    Returns a dict with

    - ``'duplicates'``: per split (train/valid/test), rows minus unique rows
      within that split;
    - ``'leakage'``: per split (valid/test), the number of *rows* whose triple
      :math:`(h, r, t)` also occurs in train;
    - ``'unseen_entity_rows'``: per split (valid/test), the number of rows with
      a head or tail that never occurs (as head or tail) in train;
    - ``'test_in_valid'``: ``{'test': n}``, test rows whose triple occurs in
      valid.
    """
    triples = {s: split_triples(data, s) for s in SPLITS}
    ids = dict(zip(SPLITS, _triple_ids([triples[s] for s in SPLITS])))
    duplicates = {s: int(ids[s].numel() - torch.unique(ids[s]).numel()) for s in SPLITS}
    leakage = {s: int(_isin(ids[s], ids['train']).sum()) for s in EVAL_SPLITS}

    seen = seen_entities(data)
    unseen = {s: int((~(seen[triples[s][:, 0]] & seen[triples[s][:, 2]])).sum())
              for s in EVAL_SPLITS}
    test_in_valid = int(_isin(ids['test'], ids['valid']).sum())
    return {
        'duplicates': duplicates,
        'leakage': leakage,
        'unseen_entity_rows': unseen,
        'test_in_valid': {'test': test_in_valid},
    }


def clean_splits(data: HeteroData, dedupe: bool = True,
                 remove_leakage: bool = True) -> HeteroData:
    r"""Returns a new graph with cleaned splits; features, names and every
    other attribute are shared with ``data`` untouched.

    Args:
        data (HeteroData): An MMKG graph.
        dedupe (bool): Remove duplicate rows within each split, keeping the
            first occurrence of every triple and the order of the rows.
        remove_leakage (bool): Remove valid rows whose triple occurs in train,
            and test rows whose triple occurs in train or valid.
    """
    out = copy.copy(data)  # new stores, so assigning below leaves `data` as is
    triples = {s: split_triples(data, s) for s in SPLITS}
    ids = dict(zip(SPLITS, _triple_ids([triples[s] for s in SPLITS])))
    for split in SPLITS:
        keep = torch.ones(ids[split].numel(), dtype=torch.bool)
        if dedupe:
            keep &= _first_occurrence(ids[split])
        if remove_leakage and split != 'train':
            seen = ids['train'] if split == 'valid' else torch.cat([ids['train'], ids['valid']])
            keep &= ~_isin(ids[split], seen)
        t = triples[split][keep]
        p = SPLIT_PREFIX[split]
        out[REL][f'{p}edge_index'] = torch.stack([t[:, 0], t[:, 2]], dim=0).contiguous()
        out[REL][f'{p}edge_type'] = t[:, 1].contiguous()
    return out


@dataclass
class ModalityCoverage:
    """How many entities have one feature modality."""
    count: int
    fraction: float
    dim: int


@dataclass
class MMKGReport:
    """The data report of an MMKG (see :func:`report`)."""
    name: Optional[str]
    num_entities: int
    num_relations: int
    rows: Dict[str, int]
    duplicates: Dict[str, int]
    leakage: Dict[str, int]
    unseen_entity_rows: Dict[str, int]
    test_in_valid: int
    coverage: Dict[str, ModalityCoverage] = field(default_factory=dict)
    no_modality: int = 0
    relation_categories: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of every field."""
        return asdict(self)

    def __str__(self) -> str:
        n = max(self.num_entities, 1)
        title = f"MMKG report: {self.name}" if self.name else "MMKG report"
        lines = [
            title,
            f"  {'entities':<22}{self.num_entities:>10,}",
            f"  {'relations':<22}{self.num_relations:>10,}",
            "  relation categories   " + "  ".join(
                f"{c}: {k:,}" for c, k in self.relation_categories.items()),
            "",
            f"  {'split':<8}{'rows':>10}{'duplicates':>12}{'in train':>10}"
            f"{'unseen entity':>15}",
        ]
        for s in SPLITS:
            leak = f"{self.leakage[s]:,}" if s in self.leakage else '-'
            unseen = f"{self.unseen_entity_rows[s]:,}" if s in self.unseen_entity_rows else '-'
            lines.append(f"  {s:<8}{self.rows[s]:>10,}{self.duplicates[s]:>12,}"
                         f"{leak:>10}{unseen:>15}")
        lines.append(f"  test rows also in valid: {self.test_in_valid:,}")
        lines += ["", f"  {'modality':<22}{'entities':>10}{'coverage':>10}{'dim':>8}"]
        for m, c in self.coverage.items():
            lines.append(f"  {m:<22}{c.count:>10,}{c.fraction:>10.1%}{c.dim:>8}")
        lines.append(f"  {'no feature modality':<22}{self.no_modality:>10,}"
                     f"{self.no_modality / n:>10.1%}{'':>8}")
        return "\n".join(lines)

    def plot_coverage(self, path) -> str:
        """Saves a PNG bar chart of the fraction of entities with each
        modality, plus one bar for entities with no feature modality.
        Returns ``path``."""
        # An explicit Agg canvas: no pyplot, no global backend switch.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        labels = list(self.coverage) + ['no feature\nmodality']
        values = [c.fraction for c in self.coverage.values()]
        values.append(self.no_modality / max(self.num_entities, 1))
        fig = Figure(figsize=(1.2 * len(labels) + 2, 3.5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        colors = ['tab:blue'] * (len(labels) - 1) + ['tab:gray']
        bars = ax.bar(range(len(labels)), values, color=colors)
        ax.bar_label(bars, labels=[f'{v:.1%}' for v in values], padding=2)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel('fraction of entities')
        title = 'modality coverage'
        ax.set_title(f'{self.name}: {title}' if self.name else title)
        fig.tight_layout()
        fig.savefig(path, format='png')
        return str(path)


def report(data: HeteroData, verbose: bool = True, feature_store=None) -> MMKGReport:
    r"""Builds the :class:`MMKGReport` of ``data``.

    Relation categories follow OpenKE: over the unique triples of all splits
    together, a relation is ``1-N`` when its average tails per head
    :math:`\mathrm{tph}_r \geq 1.5`, ``N-1`` when its heads per tail
    :math:`\mathrm{hpt}_r \geq 1.5`, ``N-N`` when both, ``1-1`` otherwise.

    Args:
        data (HeteroData): An MMKG graph.
        verbose (bool): Print the report.
        feature_store (DiskFeatureStore, optional): Where the graph's
            feature rows lie instead (its masks and dimensions are read,
            never its rows). (default: :obj:`None`)
    """
    quirks = quirk_counts(data)
    num_entities = data[ENTITY].num_nodes
    triples = {s: split_triples(data, s) for s in SPLITS}

    coverage: Dict[str, ModalityCoverage] = {}
    has_any = torch.zeros(num_entities, dtype=torch.bool)
    sources = ([(m, data[m].mask, int(data[m].x.size(1))) for m in modalities(data)]
               if feature_store is None else
               [(m, feature_store.get_tensor(m, 'mask', index=None), feature_store.dims[m])
                for m in feature_store.modalities])
    for m, mask, dim in sources:
        mask = mask.bool()
        has_any |= mask
        count = int(mask.sum())
        coverage[m] = ModalityCoverage(count, count / num_entities, dim)

    categories = relation_categories(torch.cat([triples[s] for s in SPLITS]),
                                     data.num_relations, threshold=1.5)
    name = getattr(data, 'name', None)
    out = MMKGReport(
        name=None if name is None else str(name),
        num_entities=int(num_entities),
        num_relations=int(data.num_relations),
        rows={s: int(triples[s].size(0)) for s in SPLITS},
        duplicates=quirks['duplicates'],
        leakage=quirks['leakage'],
        unseen_entity_rows=quirks['unseen_entity_rows'],
        test_in_valid=quirks['test_in_valid']['test'],
        coverage=coverage,
        no_modality=int((~has_any).sum()),
        relation_categories={c: categories.count(c) for c in CATEGORIES},
    )
    if verbose:
        print(out)
    return out
