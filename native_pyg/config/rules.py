"""The rule types of config keys and the checks that read them.

A section of the run config (:mod:`native_pyg.config.run_config`) declares
each key with its rule beside it, in the dataclass field's metadata::

    lr: float = key(1e-3, Range(0.0, 10.0, low_open=True))

Numeric keys have a :class:`Range` (floats must also be finite), string keys
with a fixed set of values have :class:`Choices`, hop lists a
:class:`HopList`, and the few free-text keys :data:`FREE`; bool keys are
declared plainly and checked by type alone. A value of the wrong type
(:func:`coerce`) or outside its rule (:func:`check_section`) is a one-line
:class:`ValueError` naming the source, the key and what is allowed
(``"run.yaml: training.lr: must be > 0 (range (0, 10]), got -1.0"``).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple, Union

#: ``training.loss``: the losses of :data:`native_pyg.training.losses.LOSSES`.
LOSS_NAMES = ('self_adversarial', 'margin')
#: ``training.corrupt_side``: one corrupted side per positive row, or per negative.
CORRUPT_SIDES = ('row', 'negative')
#: ``training.table_optimizer``: the optimiser of the structural table.
TABLE_OPTIMIZERS = ('adam', 'sparse_adam', 'rowwise_adagrad')

#: the field metadata entry that holds a key's rule
RULE = 'rule'


def _fmt(x: Union[int, float]) -> str:
    return str(x) if isinstance(x, int) else f'{x:g}'


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Range:
    """Allowed numbers: ``low`` / ``high`` bounds (``None``: unbounded on that
    side), each inclusive unless ``*_open``; ``nullable``: ``null`` too.
    Floats must be finite whatever the bounds."""
    low: Optional[Union[int, float]] = None
    high: Optional[Union[int, float]] = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False

    def _low(self) -> str:
        return f"{'>' if self.low_open else '>='} {_fmt(self.low)}"

    def _high(self) -> str:
        return f"{'<' if self.high_open else '<='} {_fmt(self.high)}"

    def interval(self) -> str:
        """The range alone: ``'(0, 10]'``, ``'>= 1'``."""
        if self.low is not None and self.high is not None:
            return (f"{'(' if self.low_open else '['}{_fmt(self.low)}, "
                    f"{_fmt(self.high)}{')' if self.high_open else ']'}")
        return self._low() if self.low is not None else self._high()

    def _two_sided(self) -> bool:
        return self.low is not None and self.high is not None

    def describe(self) -> str:
        """What is allowed, in words: ``'in (0, 10]'``, ``'null or >= 1'``."""
        return self._null() + ('in ' if self._two_sided() else '') + self.interval()

    def _null(self) -> str:
        return 'null or ' if self.nullable else ''

    def violation(self, v: Any) -> Optional[str]:
        """``None`` if ``v`` is allowed, else what it must be: the bound it
        breaks, with the whole range when it has two bounds."""
        if v is None and self.nullable:
            return None
        if isinstance(v, float) and not math.isfinite(v):
            return (f"{self._null()}a finite number {'in ' if self._two_sided() else ''}"
                    f"{self.interval()}")
        if not _is_number(v):
            return self.describe()
        both = f' (range {self.interval()})' if self._two_sided() else ''
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return self._null() + self._low() + both
        if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
            return self._null() + self._high() + both
        return None


@dataclass(frozen=True)
class HopList:
    """``null`` or a non-empty list of integers in ``per_hop``, or ``-1``
    (all neighbours), one per hop."""
    per_hop: Range = Range(1)

    def describe(self) -> str:
        """What is allowed, in words."""
        return f'null or a non-empty list of integers {self.per_hop.describe()} or -1 (all)'

    def violation(self, v: Any) -> Optional[str]:
        """``None`` if ``v`` is allowed, else :meth:`describe`."""
        if v is None:
            return None
        if isinstance(v, list) and v and all(
                isinstance(k, int) and not isinstance(k, bool) and
                (k == -1 or self.per_hop.violation(k) is None) for k in v):
            return None
        return self.describe()


@dataclass(frozen=True)
class Choices:
    """Allowed strings: ``values`` (``null`` too if ``nullable``); an entry
    ``'<prefix>:N'`` stands for ``<prefix>:0``, ``<prefix>:1``, ..."""
    values: Tuple[str, ...]
    nullable: bool = False

    def describe(self) -> str:
        """What is allowed, in words: ``'one of a, b, c'``."""
        return 'one of ' + ', '.join((('null',) if self.nullable else ()) + self.values)

    def violation(self, v: Any) -> Optional[str]:
        """``None`` if ``v`` is allowed, else :meth:`describe`."""
        if v is None and self.nullable:
            return None
        if isinstance(v, str) and any(
                v == c or (c.endswith(':N') and re.fullmatch(re.escape(c[:-1]) + r'\d+', v))
                for c in self.values):
            return None
        return self.describe()


@dataclass(frozen=True)
class Free:
    """Any value of the key's type: names the checks cannot know (modalities
    are checked against the dataset, a text model when it is loaded)."""

    def describe(self) -> str:
        """What is allowed, in words."""
        return 'any name'

    def violation(self, v: Any) -> Optional[str]:
        """Always ``None``: the type check (:func:`coerce`) is the whole check."""
        return None


#: the rule of a free-text key
FREE = Free()

Rule = Union[Range, HopList, Choices, Free]


def key(default: Any, rule: Rule) -> Any:
    """A config key: a dataclass field with ``default`` and ``rule`` (kept in
    the field's metadata under :data:`RULE`, read by :func:`section_rules`).

    Args:
        default: the key's value when a config does not give it (immutable).
        rule: what values are allowed (:class:`Range`, :class:`Choices`,
            :class:`HopList` or :data:`FREE`).
    """
    return dataclasses.field(default=default, metadata={RULE: rule})


@functools.lru_cache(maxsize=None)
def section_rules(cls: type) -> Mapping[str, Rule]:
    """The rules of the section dataclass ``cls``, key by key in declaration
    order (a read-only view; bool keys, checked by type alone, are left out).

    Raises:
        TypeError: a key that is neither a bool nor declared with :func:`key`.
    """
    rules: Dict[str, Rule] = {}
    for f in dataclasses.fields(cls):
        rule = f.metadata.get(RULE)
        if rule is None and not isinstance(f.default, bool):
            raise TypeError(f"{cls.__name__}.{f.name}: a non-bool key needs a rule: declare "
                            f"it as key(default, rule)")
        if rule is not None:
            rules[f.name] = rule
    return MappingProxyType(rules)


def coerce(kind: str, default: Any, value: Any, where: str) -> Any:
    """``value`` of a key declared as ``kind`` (its dataclass annotation,
    e.g. ``'Optional[List[int]]'``) with YAML's quirks undone: ``1e-4`` (a
    string to YAML) as a float, ``'10,5'`` as a list; a value of the wrong
    type is a one-line :class:`ValueError` at ``where`` (``'src: training.lr'``);
    an integer key takes ``'1e3'`` too."""
    optional = 'Optional' in kind
    if value is None and optional:
        return None
    if 'List' in kind:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [x.strip() for x in str(value).split(',') if x.strip()]
            if 'int' in kind:
                try:
                    return [int(x) for x in value]
                except ValueError:
                    raise ValueError(f"{where}: expected integers, got {value!r}") from None
        item = int if 'int' in kind else str
        if not isinstance(value, list) or not all(
                isinstance(x, item) and not isinstance(x, bool) for x in value):
            raise ValueError(f"{where}: expected a list of "
                             f"{'integers' if item is int else 'names'}, got {value!r}"[:300])
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if 'float' in kind:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        elif _is_number(value):
            return float(value)
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if 'int' in kind:
        if isinstance(value, str):  # '1e3': YAML's string, an integer written as a float
            try:
                number = float(value)
                value = int(number) if number.is_integer() else value
            except ValueError:
                pass
        if not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
    return value


def check_section(cls: type, values: Dict[str, Any], where: str) -> None:
    """Checks the given keys of the section dataclass ``cls`` against their
    rules (:func:`section_rules`), in declaration order.

    Raises:
        ValueError: ``"<where>.<key>: must be <allowed>, got <value>"`` for
            the first key outside its range or choices.
    """
    for name, rule in section_rules(cls).items():
        if name in values:
            problem = rule.violation(values[name])
            if problem is not None:
                raise ValueError(f"{where}.{name}: must be {problem}, got {values[name]!r}")
