"""The allowed values of every config key, in one table per section, and
the checks that read them: a value outside its range or choices is a
one-line :class:`ValueError` naming the source, the key and what is allowed
(``"run.yaml: training.lr: must be > 0 (range (0, 10]), got -1.0"``).

Numeric keys have a :class:`Range` (floats must also be finite), string keys
with a fixed set of values have :class:`Choices`; the few free-text keys are
listed in :data:`FREE`; bool keys are checked by type alone. The sets of
names come from the modules that accept them (scorers, losses, encoders...),
so a new scorer is allowed here as soon as it is registered there.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional, Set, Tuple, Union

import yaml

from native_pyg.data.readers import read_text
from native_pyg.data.yaml_bounds import BoundedLoader, expanded_size
from native_pyg.nn.comat import GP_ON
from native_pyg.nn.gnn import COMPOSITIONS, STRUCTURAL_ENCODERS
from native_pyg.nn.redaf import FUSIONS, MISSING
from native_pyg.nn.scorers import SCORERS
from native_pyg.kernels.cpu_blas import CPU_BLAS
from native_pyg.kernels.precision import PRECISIONS

#: ``training.loss``: the losses of :data:`native_pyg.training.losses.LOSSES`.
LOSS_NAMES = ('self_adversarial', 'margin')
#: ``training.corrupt_side``: one corrupted side per positive row, or per negative.
CORRUPT_SIDES = ('row', 'negative')
#: ``training.table_optimizer``: the optimiser of the structural table.
TABLE_OPTIMIZERS = ('adam', 'sparse_adam', 'rowwise_adagrad')


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


Rule = Union[Range, HopList, Choices]

#: bounds of sizes that allocate per entity, relation or positive (a mistyped
#: 1e11 is a one-line error, not an allocation failure)
MAX_CHANNELS = 65536
MAX_NEGATIVES = 65536

#: the allowed values of every non-bool key but the free-text ones, per section
RULES: Dict[str, Dict[str, Rule]] = {
    'model': {
        'hidden_channels': Range(1, MAX_CHANNELS),
        'scorer': Choices(tuple(SCORERS)),
        'margin': Range(0.0, low_open=True),
        'epsilon': Range(0.0, low_open=True),
        'missing': Choices(tuple(MISSING)),
        'fusion': Choices(tuple(FUSIONS)),
        'encoder': Choices(('none', *STRUCTURAL_ENCODERS)),
        'num_layers': Range(1, 64),
        'encoder_dropout': Range(0.0, 1.0, high_open=True),
        'num_bases': Range(1, MAX_CHANNELS, nullable=True),
        'num_blocks': Range(1, MAX_CHANNELS, nullable=True),
        'composition': Choices(tuple(COMPOSITIONS)),
        'encoder_input': Choices(('structure', 'structure+modalities')),
    },
    'training': {
        'epochs': Range(1),
        'batch_size': Range(1),
        'threads': Range(1, 1024, nullable=True),
        'eval_protocol': Choices(('auto', 'full', 'streamed', 'sampled')),
        'eval_sample': Range(0),
        'test_sample': Range(0),
        'eval_candidates': Range(1),
        'steps_per_epoch': Range(0),
        # Adam steps beyond 10 only overflow
        'lr': Range(0.0, 10.0, low_open=True),
        'table_optimizer': Choices(TABLE_OPTIMIZERS),
        'num_negatives': Range(1, MAX_NEGATIVES),
        'shared_negatives': Range(0),
        'in_batch_negatives': Range(0, MAX_NEGATIVES),
        'corrupt_side': Choices(CORRUPT_SIDES),
        'loss': Choices(LOSS_NAMES),
        # 0: uniform weights over the negatives
        'adv_temperature': Range(0.0),
        'ranking_margin': Range(0.0),
        'regul_rate': Range(0.0),
        'mu': Range(0.0),
        'lrg': Range(0.0, 10.0, low_open=True, nullable=True),
        'beta': Range(0.0),
        'gp_on': Choices(tuple(GP_ON)),
        'noise_dim': Range(1, MAX_CHANNELS),
        'structure_dropout': Range(0.0, 1.0, high_open=True),
        # 0 is fine without model.structure_stand_in (the trainer refuses it with)
        'stand_in_epochs': Range(0),
        'eval_every': Range(0),
        'eval_batch_size': Range(1),
        'patience': Range(0),
        'seed': Range(0, 2 ** 32 - 1),
        # resolve_device: 'auto' or a torch device; the CLI documents these
        'device': Choices(('auto', 'cpu', 'cuda', 'cuda:N', 'mps')),
        'precision': Choices(PRECISIONS),
        'cpu_blas': Choices(CPU_BLAS),
        'num_neighbors': HopList(),
        'num_workers': Range(0, 1024),
    },
    'data': {
        'nan_rows': Choices(('error', 'missing')),
        'text_features': Choices(('names',), nullable=True),
    },
}

#: keys whose values are names the checks cannot know (modalities are checked
#: against the dataset, the text model when it is loaded)
FREE: Dict[str, Tuple[str, ...]] = {'model': ('modalities',), 'training': (),
                                    'data': ('text_model', 'feature_store')}


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


def check_section(section: str, values: Dict[str, Any], where: str) -> None:
    """Checks the given keys of one section against :data:`RULES`.

    Raises:
        ValueError: ``"<where>.<key>: must be <allowed>, got <value>"`` for
            the first key outside its range or choices.
    """
    for key, rule in RULES.get(section, {}).items():
        if key in values:
            problem = rule.violation(values[key])
            if problem is not None:
                raise ValueError(f"{where}.{key}: must be {problem}, got {values[key]!r}")


class DuplicateKeyError(yaml.YAMLError):
    """A mapping of a YAML document gives a key twice."""


class UniqueKeyLoader(BoundedLoader):
    """:class:`yaml.SafeLoader` that refuses a key given twice in one mapping
    (PyYAML keeps the last silently), naming the key and both lines.
    Merge keys (``<<: *base``) may still be overridden."""

    def construct_document(self, node: yaml.Node) -> Any:
        """Checks the document's size with aliases expanded
        (:class:`~native_pyg.data.yaml_bounds.BoundedLoader`) and the keys
        of every mapping, then builds it."""
        expanded_size(node)
        self._check_keys(node, (), set())
        return super().construct_document(node)

    def _check_keys(self, node: yaml.Node, at: Tuple[str, ...], seen: Set[int]) -> None:
        if id(node) in seen:  # an alias of a node already checked (or of its parent)
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_keys(item, at + (f'[{i}]',), seen)
        elif isinstance(node, yaml.MappingNode):
            lines: Dict[str, int] = {}
            for key, value in node.value:
                if key.tag == 'tag:yaml.org,2002:merge' or not isinstance(key, yaml.ScalarNode):
                    continue
                line = key.start_mark.line + 1  # marks count from 0
                if key.value in lines:
                    name = '.'.join(at + (key.value,))
                    raise DuplicateKeyError(f"line {line}: duplicate key {name!r} (first "
                                            f"given on line {lines[key.value]})")
                lines[key.value] = line
                self._check_keys(value, at + (key.value,), seen)


def load_yaml(path: str) -> Any:
    """The YAML document in ``path``, read by :class:`UniqueKeyLoader`.

    Raises:
        ValueError: one line naming the file: invalid YAML (with its line)
            or a key given twice.
    """
    text = read_text(path)  # not UTF-8: one line with the file, line and byte
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except DuplicateKeyError as e:
        raise ValueError(f"{path}: {e}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f' at line {mark.line + 1}' if mark is not None else ''
        raise ValueError(f"{path}: invalid YAML{line} ({e.problem or e.context})") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: invalid YAML ({' '.join(str(e).split())})") from None
