r"""Readers of the raw-input tables a modality is made from, entities named
as in the dataset.

Two layouts, fields separated by a TAB (a value may contain spaces)::

    entity<TAB>value                  images, descriptions (several rows
                                      of one entity allowed)
    entity<TAB>attribute<TAB>value    numeric attributes

Lines that are blank or start with ``#`` are skipped. A row naming an
entity that is not in the dataset is counted in the :class:`TableReport`,
not an error: a table made for a larger graph can be reused on a subset.
A malformed row is a :class:`~native_pyg.data.readers.MMKGFormatError`
naming ``file:line:``.
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Set, Tuple

from native_pyg.data.readers import MMKGFormatError, shown, text_lines


@dataclass
class TableReport:
    """What a raw-input table held.

    Args:
        path (str): The table.
        rows (int): Rows read (blank and comment lines not counted).
        unknown (int): Rows naming an entity not in the dataset.
        unknown_example (str, optional): The first such entity name.
        entities (int): Distinct dataset entities the table names.
    """
    path: str
    rows: int = 0
    unknown: int = 0
    unknown_example: Optional[str] = None
    entities: int = 0

    def line(self) -> str:
        """A one-line summary, e.g. ``images.tsv: 120 rows, 40 entities; 3
        rows name entities not in the dataset (e.g. 'Atlantis')``."""
        text = (f"{osp.basename(self.path)}: {self.rows:,} row{_s(self.rows)}, "
                f"{self.entities:,} entit{'y' if self.entities == 1 else 'ies'}")
        if self.unknown:
            verb = 'names an entity' if self.unknown == 1 else 'name entities'
            text += (f"; {self.unknown:,} row{_s(self.unknown)} {verb} not in the dataset "
                     f"(e.g. {shown(self.unknown_example or '')})")
        return text


def _s(count: int) -> str:
    return '' if count == 1 else 's'


def _table_rows(path: str) -> Iterator[Tuple[int, str]]:
    """``(line number, line)`` of the rows of a table: blank and ``#``
    comment lines left out."""
    for number, line in text_lines(path):
        content = line.strip()
        if content and not content.startswith('#'):
            yield number, line


def _tab_hint(line: str) -> str:
    # the commonest mistake: a table saved with spaces where the tabs were
    return '; the fields must be separated by a TAB' if '\t' not in line else ''


class _EntityLookup:
    """Entity name -> id, counting the rows of the table and the names that
    are not in the dataset."""

    def __init__(self, path: str, entity_index: Mapping[str, int]):
        self.entity_index = entity_index
        self.report = TableReport(path)
        self.seen: Set[int] = set()

    def __call__(self, name: str) -> Optional[int]:
        self.report.rows += 1
        entity = self.entity_index.get(name)
        if entity is None:
            self.report.unknown += 1
            if self.report.unknown_example is None:
                self.report.unknown_example = name
            return None
        self.seen.add(entity)
        return entity

    def finish(self) -> TableReport:
        self.report.entities = len(self.seen)
        return self.report


def read_entity_values(path: str, entity_index: Mapping[str, int]
                       ) -> Tuple[Dict[int, List[str]], TableReport]:
    r"""Reads an ``entity<TAB>value`` table (image paths, descriptions).

    The value is everything after the first TAB, surrounding spaces cut (a
    description may hold further tabs).

    Args:
        path (str): The table (UTF-8).
        entity_index (Mapping[str, int]): Entity name -> row id.

    Returns:
        ``(values, report)``: the values of each entity id, in file order
        (an entity may have several rows), and a :class:`TableReport`.

    Raises:
        MMKGFormatError: A row without a TAB or with an empty field, naming
            ``path:line:``.
    """
    lookup = _EntityLookup(path, entity_index)
    values: Dict[int, List[str]] = {}
    for number, line in _table_rows(path):
        fields = line.split('\t', 1)
        name = fields[0].strip()
        value = fields[1].strip() if len(fields) == 2 else ''
        if not name or not value:
            raise MMKGFormatError(f"{path}:{number}: expected entity<TAB>value, got "
                                  f"{shown(line)}{_tab_hint(line)}")
        entity = lookup(name)
        if entity is not None:
            values.setdefault(entity, []).append(value)
    return values, lookup.finish()


def read_entity_attributes(path: str, entity_index: Mapping[str, int]
                           ) -> Tuple[List[Tuple[int, str, str, int]], TableReport]:
    r"""Reads an ``entity<TAB>attribute<TAB>value`` table (numeric
    attributes).

    Args:
        path (str): The table (UTF-8).
        entity_index (Mapping[str, int]): Entity name -> row id.

    Returns:
        ``(rows, report)``: ``(entity id, attribute, raw value, line
        number)`` per row of a dataset entity, in file order (the line
        number lets a later error about the value name its row), and a
        :class:`TableReport`.

    Raises:
        MMKGFormatError: A row without exactly three non-empty fields,
            naming ``path:line:``.
    """
    lookup = _EntityLookup(path, entity_index)
    rows: List[Tuple[int, str, str, int]] = []
    for number, line in _table_rows(path):
        fields = [field.strip() for field in line.split('\t')]
        if len(fields) != 3 or not all(fields):
            got = (f"{len(fields)} field{_s(len(fields))}" if len(fields) != 3 else
                   "an empty field")
            raise MMKGFormatError(f"{path}:{number}: expected entity<TAB>attribute<TAB>value, "
                                  f"got {got} in {shown(line)}{_tab_hint(line)}")
        entity = lookup(fields[0])
        if entity is not None:
            rows.append((entity, fields[1], fields[2], number))
    return rows, lookup.finish()
