"""Reading a run's YAML file: one-line :class:`ValueError` naming the file
and the line for invalid YAML, a key given twice in one mapping, or aliases
that expand past :mod:`native_pyg.data.yaml_bounds`' bound."""
from __future__ import annotations

from typing import Any, Dict, Set, Tuple

import yaml

from native_pyg.data.readers import read_text
from native_pyg.data.yaml_bounds import BoundedLoader, expanded_size


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
