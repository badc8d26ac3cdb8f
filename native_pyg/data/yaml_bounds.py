r"""YAML whose aliases cannot blow up: a document is built only when, with
every alias expanded, it has at most :data:`MAX_NODES` nodes.

A YAML alias (``*name``) repeats the node its anchor (``&name``) marks
without copying it, so a few lines of nested aliases describe a document of
:math:`k^{\text{levels}}` nodes (the "billion laughs"). PyYAML builds it as
shared references, and whatever walks it afterwards (checks, copies,
``to_dict``) takes time and memory exponential in the file's size. Configs,
manifests and search spaces are small: :class:`BoundedLoader` counts the
expanded size of the composed document first, in time linear in the file,
and refuses one past the bound, or one whose alias refers to itself.
"""
from __future__ import annotations

from typing import Any, Dict, Set

import yaml

#: the most nodes a document may expand to (a config has a few hundred)
MAX_NODES = 100_000


def expanded_size(node: yaml.Node, limit: int = MAX_NODES) -> int:
    """The number of nodes of ``node`` with every alias expanded.

    Raises:
        yaml.MarkedYAMLError: past ``limit`` nodes, or an alias inside the
            node it refers to, naming the line.
    """
    sizes: Dict[int, int] = {}
    open_nodes: Set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:  # an alias of a node already counted: its size again, not its walk
            return sizes[key]
        if key in open_nodes:
            raise yaml.MarkedYAMLError(problem='an alias refers to a node that contains it',
                                       problem_mark=n.start_mark)
        open_nodes.add(key)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        open_nodes.discard(key)
        if total > limit:
            raise yaml.MarkedYAMLError(
                problem=f'aliases expand this document past {limit:,} nodes (refused, as a '
                        f'config or manifest never needs that many)', problem_mark=n.start_mark)
        sizes[key] = total
        return total

    try:
        return size(node)
    except RecursionError:
        raise yaml.MarkedYAMLError(problem='nested too deeply',
                                   problem_mark=node.start_mark) from None


class BoundedLoader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` that builds a document only when
    :func:`expanded_size` allows it."""

    def construct_document(self, node: yaml.Node) -> Any:
        expanded_size(node)
        return super().construct_document(node)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` through :class:`BoundedLoader`."""
    return yaml.load(text, Loader=BoundedLoader)
