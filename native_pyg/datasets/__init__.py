"""PyG dataset classes for multi-modal knowledge graphs."""
from native_pyg.datasets.large_synthetic import (generate_large_mmkg, large_mmkg_entities,
                                                 load_large_mmkg)
from native_pyg.datasets.mmkg import MMKGDataset
from native_pyg.datasets.synthetic import SyntheticMMKG, generate_synthetic_mmkg
from native_pyg.datasets.wildkgc import WildKGC

__all__ = ['MMKGDataset', 'WildKGC', 'SyntheticMMKG', 'generate_synthetic_mmkg',
           'generate_large_mmkg', 'load_large_mmkg', 'large_mmkg_entities']


def load_dataset(name: str, root=None, **kwargs):
    """The dataset called ``name``: ``'synthetic'`` (the embedded default) or a
    WildKGC name (``DB15K``, ``MKG-W``, ``MKG-Y``, ``TIVA``, ``KVC16K``)."""
    if name.lower() == 'synthetic':
        file_options = {'dedupe', 'remove_leakage', 'nan_rows', 'zero_rows_missing', 'verify',
                        'text_features', 'text_model'}
        if file_options & set(kwargs):
            raise ValueError(f"{', '.join(sorted(file_options & set(kwargs)))}: options for "
                             f"datasets read from files, not the generated synthetic data")
        return SyntheticMMKG(root, **kwargs)
    known = {k.lower() for k in WildKGC.dirs} | {'kuai16k'}
    if name.lower() not in known:
        raise ValueError(f"unknown dataset {name!r}; expected synthetic or one of "
                         f"{', '.join(WildKGC.dirs)}")
    if root is None:
        raise ValueError(f"dataset {name!r} needs a root directory (--root)")
    return WildKGC(root, name, **kwargs)


__all__.append('load_dataset')
