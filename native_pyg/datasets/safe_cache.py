r"""PyG's processed cache, read without ever running code from it.

:class:`~torch_geometric.data.InMemoryDataset` reads three files from
``processed/``: the cache itself (:meth:`InMemoryDataset.load`, which falls
back to ``torch.load(weights_only=False)`` when the safe load fails) and
``pre_transform.pt`` / ``pre_filter.pt`` (read with ``weights_only=False``
on every instantiation). A dataset folder someone handed over may carry a
pickled payload in any of them, and unpickling it runs that payload.
:class:`SafeCacheDataset` reads all three with ``weights_only=True`` only
(tensors and PyG's own allow-listed classes) and never falls back: a file
that is not a plain cache is one :class:`ValueError` naming it.
"""
from __future__ import annotations

import os
import os.path as osp
import re
import warnings
from typing import Any, Type

from torch_geometric.data import InMemoryDataset
from torch_geometric.data.data import BaseData
from torch_geometric.io import fs

from native_pyg.data.safe_load import load_pt

#: the two files in which PyG records the pre-transform and pre-filter used
RECORD_FILES = ('pre_transform.pt', 'pre_filter.pt')


def _repr(obj: Any) -> str:
    # how PyG records a pre_transform / pre_filter (as torch_geometric.data.dataset does)
    return 'None' if obj is None else re.sub(r'(<.*?)\s.*(>)', r'\1\2', str(obj))


def _hint(path: str) -> str:
    return f" (delete {osp.dirname(path)} to rebuild the cache from the raw files)"


class SafeCacheDataset(InMemoryDataset):
    r"""An :class:`~torch_geometric.data.InMemoryDataset` whose processed
    files are only ever read with ``torch.load(weights_only=True)``.

    Processing is PyG's (:meth:`process` writes the cache, the
    pre-transform and pre-filter are recorded beside it), with two changes:
    the records are checked safely, and nothing is printed around
    processing, so that an error in the raw files is the only line a user
    sees.

    Raises:
        ValueError: One line naming a processed file that holds anything but
            tensors and PyG's data classes, or that cannot be read.
    """
    def _process(self) -> None:
        for name, obj in zip(RECORD_FILES, (self.pre_transform, self.pre_filter)):
            path = osp.join(self.processed_dir, name)
            if self.force_reload or not osp.exists(path):
                continue
            recorded = load_pt(path, 'a record of PyG')
            if not isinstance(recorded, str):
                raise ValueError(f"{path}: not a record of PyG (expected a string, found "
                                 f"{type(recorded).__name__})" + _hint(path))
            if recorded != _repr(obj):  # PyG's own warning, as PyG gives it
                warnings.warn(f"{path}: the cache was built with {name[:-3]} {recorded}, not "
                              f"{_repr(obj)}; pass force_reload=True to rebuild it",
                              stacklevel=3)
        if not self.force_reload and all(osp.exists(p) for p in self.processed_paths):
            return
        os.makedirs(self.processed_dir, exist_ok=True)
        self.process()
        for name, obj in zip(RECORD_FILES, (self.pre_transform, self.pre_filter)):
            fs.torch_save(_repr(obj), osp.join(self.processed_dir, name))

    def load(self, path: str, data_cls: Type[BaseData] = BaseData) -> None:
        """Loads the cache at ``path`` with ``weights_only=True`` (never
        PyG's fallback to a full unpickle)."""
        try:
            out = load_pt(path, 'a processed dataset cache')
        except ValueError as e:
            raise ValueError(f"{e}{_hint(path)}") from None
        if not (isinstance(out, tuple) and len(out) in (2, 3) and isinstance(out[0], dict)):
            raise ValueError(f"{path}: not a processed dataset cache (expected the "
                             f"(data, slices, class) that InMemoryDataset.save writes)"
                             + _hint(path))
        data, self.slices = out[0], out[1]
        cls = out[2] if len(out) == 3 else data_cls
        if not (isinstance(cls, type) and issubclass(cls, BaseData)):
            raise ValueError(f"{path}: not a processed dataset cache (its data class is "
                             f"{cls!r})" + _hint(path))
        self.data = cls.from_dict(data)
