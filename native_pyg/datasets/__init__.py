"""PyG dataset classes for multi-modal knowledge graphs: the embedded
synthetic default, WildKGC (DB15K, MKG-W, MKG-Y, TIVA, KVC16K), an MMKG in
OpenKE files (:class:`MMKGDataset`), a user's folder and a large synthetic
graph written in chunks; all over :class:`SafeCacheDataset` (processed files
read with ``weights_only=True`` only).

May import: :mod:`native_pyg.kernels`, :mod:`native_pyg.data`,
:mod:`native_pyg.features`, :mod:`native_pyg.loader`."""
import os

from native_pyg.datasets.large_synthetic import (generate_large_mmkg, is_large_mmkg,
                                                 large_mmkg_entities, load_large_mmkg)
from native_pyg.datasets.folder import FolderMMKG, find_layout, load_folder
from native_pyg.datasets.mmkg import MMKGDataset
from native_pyg.datasets.synthetic import SyntheticMMKG, generate_synthetic_mmkg
from native_pyg.datasets.wildkgc import WildKGC

__all__ = ['MMKGDataset', 'FolderMMKG', 'find_layout', 'load_folder', 'WildKGC',
           'SyntheticMMKG', 'generate_synthetic_mmkg', 'generate_large_mmkg', 'load_large_mmkg',
           'is_large_mmkg', 'large_mmkg_entities']


def is_dataset_path(name: str) -> bool:
    """Whether :func:`load_dataset` reads ``name`` as a folder: it contains a
    path separator, starts with ``.`` or ``~``, or is an existing directory
    that is not named like a built-in dataset (``synthetic``, ``DB15K``,
    ...; write ``./DB15K`` for a folder of that name)."""
    seps = {'/', os.sep} | ({os.altsep} if os.altsep else set())
    if any(sep in name for sep in seps) or name.startswith(('.', '~')):
        return True
    return os.path.isdir(name) and name.lower() not in _builtin_names()


def _builtin_names() -> set:
    return {'synthetic', 'kuai16k'} | {k.lower() for k in WildKGC.dirs}


def load_dataset(name: str, root=None, **kwargs):
    """The dataset called ``name``: ``'synthetic'`` (the embedded default), a
    WildKGC name (``DB15K``, ``MKG-W``, ``MKG-Y``, ``TIVA``, ``KVC16K``,
    under ``root``), or a path to a folder of the user's own files, read by
    :func:`~native_pyg.datasets.folder.load_folder` (see
    :mod:`native_pyg.datasets.folder` for the format; relative paths are
    relative to the working directory, ``root`` is not used for them).

    Args:
        name (str): Dataset name or folder path (see :func:`is_dataset_path`).
        root (str, optional): Where WildKGC datasets lie (``root/<name>``).
        **kwargs: Options of the dataset class (``dedupe``,
            ``remove_leakage``, ``nan_rows``, ...).
    """
    if is_dataset_path(name):
        if kwargs.pop('verify', True) is not True:
            raise ValueError("verify: checks the released WildKGC files against their "
                             "SHA-256 sums; a dataset folder has none to check")
        return load_folder(name, **kwargs)
    if name.lower() == 'synthetic':
        file_options = {'dedupe', 'remove_leakage', 'nan_rows', 'zero_rows_missing', 'verify',
                        'text_features', 'text_model'}
        if file_options & set(kwargs):
            raise ValueError(f"{', '.join(sorted(file_options & set(kwargs)))}: options for "
                             f"datasets read from files, not the generated synthetic data")
        return SyntheticMMKG(root, **kwargs)
    known = {k.lower() for k in WildKGC.dirs} | {'kuai16k'}
    if name.lower() not in known:
        raise ValueError(f"unknown dataset {name!r}; expected synthetic, one of "
                         f"{', '.join(WildKGC.dirs)}, or the path of a dataset folder "
                         f"(e.g. ./{name})")
    if root is None:
        raise ValueError(f"dataset {name!r} needs a root directory (--root)")
    return WildKGC(root, name, **kwargs)


__all__ += ['load_dataset', 'is_dataset_path']
