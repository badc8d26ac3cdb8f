"""Where a run's feature rows live (``data.feature_store``): in the graph
in memory, in a disk store written from it or streamed from a folder's
files, or in a store the user wrote (``native-pyg convert-features``),
named by its path; chosen by size for a folder with ``auto``."""
from __future__ import annotations

import os.path as osp
import warnings
from typing import Optional

from torch_geometric.data import HeteroData

from native_pyg.data.feature_store import DiskFeatureStore
from native_pyg.data.schema import ENTITY
from native_pyg.config.run_config import RunConfig

#: the values of ``data.feature_store`` that are not a store's path
FEATURE_STORE_PLACES = ('memory', 'disk', 'auto')
#: with ``data.feature_store: auto``, a folder whose feature files pass this many bytes
#: keeps its features in a disk store (streamed in, never loaded whole)
AUTO_DISK_BYTES = 2 ** 30


def stores_folder_features(folder: str, place: str) -> bool:
    """Whether a dataset folder's features go to a disk store: ``disk``,
    ``auto`` with feature files of more than :data:`AUTO_DISK_BYTES`, or the
    path of the store the folder wrote itself (a run restored from it)."""
    if place == 'disk':
        return True
    if place not in FEATURE_STORE_PLACES:  # a path: the folder's own store, or another
        own = osp.join(osp.abspath(osp.expanduser(folder)), 'processed', 'feature_store_')
        return osp.abspath(osp.expanduser(place)).startswith(own)
    if place != 'auto':
        return False
    from native_pyg.datasets import find_layout
    from native_pyg.datasets.folder import is_mmkg_folder
    if not is_mmkg_folder(folder):
        return False
    try:
        layout = find_layout(folder)
    except ValueError:  # the loader says what is wrong, in its own words
        return False
    size = sum(osp.getsize(layout.path(f.file)) for f in layout.features.values()
               if osp.isfile(layout.path(f.file)))
    return size > AUTO_DISK_BYTES


def user_feature_store(run: RunConfig, data: HeteroData) -> Optional[DiskFeatureStore]:
    """The store ``data.feature_store`` names by its path (one written by
    ``native-pyg convert-features``), checked against ``data``; ``None`` for
    ``memory`` and ``disk``."""
    path = run.data.feature_store
    if path in FEATURE_STORE_PLACES:
        return None
    if not osp.exists(osp.expanduser(path)):
        raise ValueError(f"data.feature_store {path}: no such feature store (write one with "
                         f"'native-pyg convert-features'; a trained run's store that moved: "
                         f"give its new place with --feature-store PATH)")
    store = DiskFeatureStore(osp.expanduser(path))
    n = data[ENTITY].num_nodes
    if store.num_entities != n:
        raise ValueError(f"data.feature_store {path}: holds rows of {store.num_entities:,} "
                         f"entities, the dataset has {n:,} (row i must be entity i)")
    return store


def feature_store_dir(run: RunConfig) -> str:
    """Where ``data.feature_store: disk`` keeps the dataset's feature store:
    under the dataset root, else in the user's cache (said in a warning)."""
    from native_pyg.datasets import is_dataset_path
    base = run.root or osp.join(osp.expanduser('~'), '.cache', 'native_pyg')
    if run.root is None and not is_dataset_path(run.dataset):
        warnings.warn(f"data.feature_store=disk: no dataset root, so the store goes under "
                      f"{base} (give --root, or a store's path to use one you wrote)")
    return osp.join(base, run.dataset, 'processed', 'feature_store')
