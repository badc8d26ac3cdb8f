r"""A numeric modality from entity attributes (population, area, date of
birth, ...).

Each attribute :math:`a` (of :math:`A`, sorted by name) gets a value column
and a presence column, a row being

.. math::
    \mathbf{x}_e = [v_{e,1}, \ldots, v_{e,A}, p_{e,1}, \ldots, p_{e,A}],

with :math:`p_{e,a} = 1` where entity :math:`e` has attribute :math:`a` and
else :math:`p_{e,a} = 0, v_{e,a} = 0`: a missing attribute is masked by
its presence column, never a zero that could be a real value.

Values are numbers (what :func:`float` reads) or ISO dates ``YYYY``,
``YYYY-MM``, ``YYYY-MM-DD``, read as a fractional year
(:func:`parse_value`).
"""
from __future__ import annotations

import datetime
import hashlib
import math
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from native_pyg.data.readers import MMKGFormatError, shown
from native_pyg.features.featurize import RowChunk
from native_pyg.features.raw_tables import TableReport, read_entity_attributes

#: how values of an attribute are scaled (see :class:`NumericRows`)
NORMALIZATIONS = ('zscore', 'minmax', 'rank', 'none')

_DATE = re.compile(r'([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?')


def parse_value(text: str) -> Optional[float]:
    r"""A number or an ISO date as a float; :obj:`None` for anything else,
    NaN and infinities included.

    A date is the fractional year of its first day,

    .. math::
        y + \frac{\mathrm{day\ of\ year} - 1}{\mathrm{days\ in\ } y},

    e.g. ``2000-07-02`` -> :math:`2000 + 183/366`; ``YYYY-MM`` is the first
    day of the month, ``YYYY`` the year itself. A thousands separator
    (``'1,234'``) is not a number: it is not read as one silently.
    """
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        value = _fractional_year(text)
    return value if value is not None and math.isfinite(value) else None


def _fractional_year(text: str) -> Optional[float]:
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day = (int(g) if g else 1 for g in match.groups())
    try:
        date = datetime.date(year, month, day)
    except ValueError:  # month 13, 30 February, year 0
        return None
    days_in_year = 366 if _leap(year) else 365
    return year + (date.timetuple().tm_yday - 1) / days_in_year


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


class NumericRows:
    r"""The rows of a numeric modality (a
    :class:`~native_pyg.features.featurize.RowSource`).

    Several values of one attribute for one entity are averaged. Each
    attribute is then scaled over the :math:`n_a` entities that have it:

    * ``'zscore'``: :math:`(x - \mu_a) / \sigma_a`, :math:`\sigma_a` the
      population standard deviation; an attribute with :math:`\sigma_a = 0`
      gives 0 for every present value.
    * ``'minmax'``: :math:`(x - \min_a) / (\max_a - \min_a)`, 0 for a
      constant attribute.
    * ``'rank'``: the empirical CDF :math:`r / (n_a - 1) \in [0, 1]`,
      :math:`r` the 0-based rank (ties get their average rank, so 0.5 for
      a constant attribute; 0 when :math:`n_a = 1`): robust to heavy tails
      such as populations.
    * ``'none'``: the values as they are.

    An entity has the modality (``mask``) if it has at least one attribute;
    ``counts`` is the number of its attributes. Only the present
    (entity, attribute) pairs are held; :meth:`rows` builds the rows of the
    chunk asked for.

    Args:
        values (Sequence[Tuple[int, str, float]]): ``(entity id, attribute,
            value)`` triples.
        num_entities (int): The number of entities :math:`N`.
        normalize (str): One of :data:`NORMALIZATIONS`.
            (default: ``'zscore'``)
    """

    def __init__(self, values: Sequence[Tuple[int, str, float]], num_entities: int,
                 normalize: str = 'zscore'):
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if not values:
            raise ValueError("no attribute values: a numeric modality needs at least one")
        self.num_entities = num_entities
        self.normalize = normalize
        #: the attribute names, in column order
        self.attributes = sorted({attribute for _, attribute, _ in values})
        #: the table read by :meth:`from_table`, if one was
        self.report: Optional[TableReport] = None
        column = {name: a for a, name in enumerate(self.attributes)}
        entity = np.fromiter((e for e, _, _ in values), np.int64, len(values))
        attribute = np.fromiter((column[name] for _, name, _ in values), np.int64, len(values))
        value = np.fromiter((v for _, _, v in values), np.float64, len(values))
        if entity.min() < 0 or entity.max() >= num_entities:
            bad = int(entity[(entity < 0) | (entity >= num_entities)][0])
            raise ValueError(f"entity id {bad} is outside [0, {num_entities})")
        if not np.isfinite(value).all():
            k = int(np.flatnonzero(~np.isfinite(value))[0])
            raise ValueError(f"attribute {values[k][1]!r} of entity {values[k][0]}: value "
                             f"{values[k][2]} is not finite")
        # one value per (entity, attribute) pair, sorted by entity, then attribute
        num_attributes = len(self.attributes)
        pairs, inverse = np.unique(entity * num_attributes + attribute, return_inverse=True)
        per_pair = np.bincount(inverse)
        self._raw = np.bincount(inverse, weights=value) / per_pair  # the mean of repeats
        self._entity = pairs // num_attributes
        self._attribute = pairs % num_attributes
        self._statistics = self._fit()
        with np.errstate(over='ignore', invalid='ignore'):  # reported below, by attribute
            self._scaled = self._scale().astype(np.float32)
        if not np.isfinite(self._scaled).all():
            name = self.attributes[int(self._attribute[~np.isfinite(self._scaled)][0])]
            raise ValueError(f"attribute {name!r}: values beyond the range of float32 "
                             f"(largest |x| = {np.abs(self._raw).max():.3g}) with "
                             f"normalize={normalize!r}; use 'rank'")

    @classmethod
    def from_table(cls, path: str, entity_index: Mapping[str, int], num_entities: int,
                   normalize: str = 'zscore') -> 'NumericRows':
        r"""The rows of an ``entity<TAB>attribute<TAB>value`` table
        (:func:`~native_pyg.features.raw_tables.read_entity_attributes`);
        its :class:`~native_pyg.features.raw_tables.TableReport` is kept in
        :attr:`report`.

        Raises:
            MMKGFormatError: A value that is not a number or a date, naming
                ``path:line:`` and the attribute, or a table with no row of
                a dataset entity.
        """
        table, report = read_entity_attributes(path, entity_index)
        values = []
        for entity, attribute, text, number in table:
            value = parse_value(text)
            if value is None:
                raise MMKGFormatError(f"{path}:{number}: attribute {shown(attribute)}: "
                                      f"{shown(text)} is not a number or a date (YYYY-MM-DD)")
            values.append((entity, attribute, value))
        if not values:
            raise MMKGFormatError(f"{path}: no attribute of an entity of the dataset "
                                  f"({report.line()})")
        rows = cls(values, num_entities, normalize)
        rows.report = report
        return rows

    @property
    def dim(self) -> int:
        """:math:`2A`: a value and a presence column per attribute."""
        return 2 * len(self.attributes)

    def _fit(self) -> Dict[str, np.ndarray]:
        """The per-attribute statistics of :attr:`normalize`."""
        count = np.bincount(self._attribute, minlength=len(self.attributes))
        if self.normalize == 'zscore':
            mean = np.bincount(self._attribute, weights=self._raw) / count
            deviation = self._raw - mean[self._attribute]
            std = np.sqrt(np.bincount(self._attribute, weights=deviation ** 2) / count)
            return {'mean': mean, 'std': std}
        if self.normalize == 'minmax':
            low = np.full(len(self.attributes), np.inf)
            high = np.full(len(self.attributes), -np.inf)
            np.minimum.at(low, self._attribute, self._raw)
            np.maximum.at(high, self._attribute, self._raw)
            return {'min': low, 'max': high}
        return {'count': count}

    def _scale(self) -> np.ndarray:
        """The values of the pairs, scaled per attribute."""
        a, x, stats = self._attribute, self._raw, self._statistics
        if self.normalize == 'zscore':
            std = stats['std'][a]
            # a constant attribute: every present value is its mean, so 0
            return np.where(std > 0, (x - stats['mean'][a]) / np.where(std > 0, std, 1), 0.0)
        if self.normalize == 'minmax':
            span = stats['max'][a] - stats['min'][a]
            return np.where(span > 0, (x - stats['min'][a]) / np.where(span > 0, span, 1), 0.0)
        if self.normalize == 'rank':
            return self._ranks()
        return x.copy()

    def _ranks(self) -> np.ndarray:
        r"""The empirical CDF :math:`r / (n_a - 1)` of each pair's value
        within its attribute (ties: average 0-based rank)."""
        order = np.lexsort((self._raw, self._attribute))  # by attribute, then value
        a, x = self._attribute[order], self._raw[order]
        start = np.searchsorted(a, np.arange(len(self.attributes)))
        end = np.searchsorted(a, np.arange(len(self.attributes)), side='right')
        cdf = np.empty(len(x))
        for lo, hi in zip(start, end):
            n = hi - lo
            if n == 1:
                cdf[lo] = 0.0
                continue
            _, first, tied = np.unique(x[lo:hi], return_index=True, return_counts=True)
            average = first + (tied - 1) / 2  # sorted: a tie occupies ranks first..first+tied-1
            cdf[lo:hi] = np.repeat(average, tied) / (n - 1)
        scaled = np.empty(len(x))
        scaled[order] = cdf
        return scaled

    def settings(self) -> Dict[str, Any]:
        """The normalisation, the attributes, the fitted statistics and a
        sha256 of the (entity, attribute, value) pairs: a changed table
        changes the settings."""
        digest = hashlib.sha256()
        digest.update('\n'.join(self.attributes).encode())
        for array in (self._entity, self._attribute, self._raw):
            digest.update(np.ascontiguousarray(array).tobytes())
        statistics = {name: [float(v) for v in stat] for name, stat in self._statistics.items()}
        return {'source': 'numeric attributes', 'normalize': self.normalize,
                'num_entities': self.num_entities, 'attributes': list(self.attributes),
                'statistics': statistics, 'values_sha256': digest.hexdigest()}

    def rows(self, entities: np.ndarray) -> RowChunk:
        """The rows of ``entities`` (``[k]`` int64 ids), in that order."""
        entities = np.asarray(entities, dtype=np.int64).reshape(-1)
        if entities.size and (entities.min() < 0 or entities.max() >= self.num_entities):
            raise IndexError(f"entity ids must lie in [0, {self.num_entities})")
        # the pairs are sorted by entity: each entity's pairs are one slice
        lo = np.searchsorted(self._entity, entities, side='left')
        hi = np.searchsorted(self._entity, entities, side='right')
        present = hi - lo
        chunk_row = np.repeat(np.arange(len(entities)), present)
        pair = np.arange(int(present.sum())) + np.repeat(lo - (np.cumsum(present) - present),
                                                         present)
        num_attributes = len(self.attributes)
        out = np.zeros((len(entities), 2 * num_attributes), dtype=np.float32)
        out[chunk_row, self._attribute[pair]] = self._scaled[pair]
        out[chunk_row, num_attributes + self._attribute[pair]] = 1.0
        return RowChunk(out, present > 0, present.astype(np.int32), {})
