r"""A user's own multi-modal KG in a folder, as a PyG dataset.

A folder is read in one of three ways, tried in this order:

1. ``mmkg.yaml`` (a manifest) names the files; keys it leaves out fall back
   to the file-name convention below::

       name: my_mmkg                  # default: the folder's name
       description: free text         # not read
       format: tsv                    # tsv | openke (default: openke if the
                                      # split files end in 2id.txt, else tsv)
       entities: entities.txt         # optional for tsv: row order of features
       relations: relations.txt       # optional for tsv
       splits: {train: train.tsv, valid: valid.tsv, test: test.tsv}
       features:
         image: features/image.npy    # shorthand: just the file
         text:
           file: features/text.pt
           mask: features/text.mask.txt   # optional
           dtype: float16                 # optional: float16|bfloat16|float32|float64
         photo:                           # raw inputs instead of a file (featurized on first
           images: images.tsv             # use, again when an input or the encoder changes):
           model: resnet50                # images (entity<TAB>path) or image_dir, text
           weights: none                  # (entity<TAB>description) or numeric
         about: {text: descriptions.tsv}  # (entity<TAB>attribute<TAB>value); see
         facts: {numeric: attributes.tsv} # native_pyg.features.raw_inputs.RawInputs

2. OpenKE files: ``entity2id.txt``, ``relation2id.txt``, ``train2id.txt``,
   ``valid2id.txt``, ``test2id.txt`` (see :mod:`native_pyg.data.readers`).

3. TSV files of names: ``train.tsv``, ``valid.tsv``, ``test.tsv`` (or
   ``.txt``), one ``head<TAB>relation<TAB>tail`` per line, and optionally
   ``entities.txt`` / ``relations.txt``, one name per line. Without
   ``entities.txt`` entity ids follow the first appearance of each name in
   train, then valid, then test (head before tail); relations likewise.
   Valid/test may name entities that never occur in train: they are kept
   (and reported), as for :class:`~native_pyg.datasets.MMKGDataset`.

Features, in both cases: ``features/<modality>.npy`` (or ``.pt`` / ``.pth``),
a float array ``[num_entities, d]`` whose row ``i`` is entity ``i`` (the
order of ``entity2id.txt`` / ``entities.txt`` / first appearance), and
optionally ``features/<modality>.mask.npy`` (``.pt``, ``.pth``: bool or 0/1
``[num_entities]``; ``.txt``: names of the entities that have the
modality). Modality names are free (``image``, ``text``, ``audio``, ...).
Without a mask, all-zero rows count as missing (``zero_rows_missing``).
"""
from __future__ import annotations

import os.path as osp
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

from torch import Tensor

from native_pyg.data.atomic_files import atomic_directory
from native_pyg.data.feature_files import feature_file_dtype, write_feature_file
from native_pyg.data.feature_store import DTYPES, META, FeatureStoreWriter
from native_pyg.data.readers import (FEATURE_DTYPES, MMKGFormatError, read_feature_file,
                                     read_id_map, read_mask_file, read_name_list, read_triples,
                                     read_tsv_triples)
from native_pyg.features.raw_inputs import featurize_raw, input_files as raw_input_files
from native_pyg.datasets.folder_layout import MANIFEST, SPLITS, find_layout, found_files
from native_pyg.datasets.mmkg import MMKGDataset

class FolderMMKG(MMKGDataset):
    r"""A multi-modal KG read from a folder of the user's own files: OpenKE
    ``*2id.txt`` files or TSV files of names, feature files per modality
    (``.npy`` / ``.pt``) with optional masks, named by file-name convention
    or by a manifest ``mmkg.yaml`` (the format: :mod:`native_pyg.datasets.folder`).
    The graph follows the MMKG schema (:mod:`native_pyg.data.schema`) and is
    cached in ``folder/processed/``; changing, adding or removing an input
    file (or the manifest) re-processes it.

    Example::

        ds = FolderMMKG('examples/my_mmkg')
        print(ds.layout.describe())
        data = ds[0]

    Args:
        root (str): The folder.
        manifest (str, optional): The manifest's file name in ``root``
            (default: ``mmkg.yaml`` if present, else file names decide).
        name (str, optional): The dataset's name (default: the manifest's
            ``name``, else the folder's name).
        **kwargs: See :class:`MMKGDataset` (``dedupe``, ``remove_leakage``,
            ``nan_rows``, ``zero_rows_missing``, ``text_features``,
            ``text_model``, ``name_style``, ``transform``, ``pre_transform``,
            ``force_reload``, ``log``). With ``log`` (the default), what
            was found is printed to stderr when the folder is (re)read.

    Raises:
        MMKGFormatError: A :class:`ValueError` of one line naming the file,
            and the line or manifest key, at fault.
    """

    def __init__(self, root: str, manifest: Optional[str] = None, name: Optional[str] = None,
                 transform: Optional[Callable] = None, pre_transform: Optional[Callable] = None,
                 force_reload: bool = False, log: bool = True, store_features: bool = False,
                 **kwargs) -> None:
        if 'prefix' in kwargs:
            raise TypeError("FolderMMKG takes name=, not prefix=")
        folder = osp.expanduser(osp.normpath(root))
        self.layout = find_layout(folder, manifest)
        if name is not None:
            self.layout.name = name
        self.store_features = bool(store_features) and bool(self.layout.features)
        if self.store_features and kwargs.get('text_features'):
            raise ValueError("text_features='names' with the folder's features in a disk store "
                             "is not supported; use data.feature_store: memory")
        super().__init__(folder, prefix=self.layout.name, transform=transform,
                         pre_transform=pre_transform, force_reload=force_reload, log=log,
                         **kwargs)
        if self.store_features and not osp.exists(osp.join(self.feature_store_path, META)):
            self._write_feature_store()

    @property
    def processed_file_names(self) -> str:
        name = super().processed_file_names
        return name[:-3] + '_store.pt' if self.store_features else name

    @property
    def feature_store_path(self) -> Optional[str]:
        """The disk store of the folder's features (``store_features``):
        ``processed/feature_store_<cache name>``, else ``None``."""
        if not self.store_features:
            return None
        return osp.join(self.processed_dir, 'feature_store_' + self.processed_file_names[:-3])

    def _write_feature_store(self) -> None:
        """Streams every feature file into :attr:`feature_store_path`, a
        chunk of rows at a time (written beside it, then moved in whole)."""
        lay = self.layout
        names = list(self[0]['entity'].name)  # in id order, as the cache holds them
        n = len(names)
        self._featurize_raw(names)
        with atomic_directory(self.feature_store_path) as tmp:
            writer = FeatureStoreWriter(tmp, n, self._store_dtype())
            for m, spec in lay.features.items():
                mask = None if spec.mask is None else read_mask_file(lay.path(spec.mask), names)
                write_feature_file(writer, m, lay.path(spec.file), n, self.nan_rows,
                                   self.zero_rows_missing, mask=mask)
            writer.close()

    def _featurize_raw(self, names: List[str]) -> None:
        """Featurizes every modality the manifest gives as raw inputs into
        ``processed/raw_features`` (:func:`~native_pyg.features.raw_inputs.featurize_raw`;
        kept while the inputs and the encoder stay the same)."""
        for m, spec in self.layout.features.items():
            if spec.raw is not None:
                out_dir = osp.dirname(self.layout.path(spec.file))
                report = featurize_raw(spec.raw, names, out_dir, m, progress=self.log)
                if report is not None and self.log:
                    print(report.line(), file=sys.stderr)

    def _store_dtype(self) -> str:
        """The disk store's dtype: the features' own where every modality has
        the same one of float16 / float32 (``dtype:`` of the manifest, else
        the files'), so that no row is rounded or widened; float32 otherwise
        (e.g. bfloat16, widened exactly)."""
        lay = self.layout
        found = {spec.dtype or feature_file_dtype(lay.path(spec.file))
                 for spec in lay.features.values()}
        one = found.pop() if len(found) == 1 else None
        return one if one in DTYPES else 'float32'

    def process(self) -> None:
        super().process()
        if self.log:  # once, when the folder is read: not before every later command's output
            print(self.layout.describe(), file=sys.stderr)

    @property
    def raw_dir(self) -> str:
        return self.root  # the files lie in the folder itself

    @property
    def raw_file_names(self) -> List[str]:
        return [f for f in (self.layout.entities, self.layout.relations) if f] + \
            [self.layout.splits[s] for s in SPLITS]

    def feature_files(self) -> Dict[str, str]:
        return {m: self.layout.path(s.file) for m, s in self.layout.features.items()}

    def input_files(self) -> List[str]:
        files = [self.layout.path(f) for f in self.layout.files()]
        for spec in self.layout.features.values():  # the images raw inputs list
            files += [] if spec.raw is None else raw_input_files(spec.raw)
        return files

    def download(self) -> None:
        missing = [f for f in self.raw_file_names if not osp.isfile(self.layout.path(f))]
        raise FileNotFoundError(f"{self.root}: missing {', '.join(missing)}")

    def read_inputs(self) -> Tuple[Dict[str, Any], Dict[str, Tensor], Dict[str, Tensor]]:
        lay = self.layout
        if lay.format == 'openke':
            ents = read_id_map(lay.path(lay.entities))
            rels = read_id_map(lay.path(lay.relations))
            kg: Dict[str, Any] = {s: read_triples(lay.path(lay.splits[s]), len(ents), len(rels))
                                  for s in SPLITS}
        else:
            e_index: Dict[str, int] = {}
            r_index: Dict[str, int] = {}
            if lay.entities:
                e_index = {n: i for i, n in enumerate(read_name_list(lay.path(lay.entities)))}
            if lay.relations:
                r_index = {n: i for i, n in enumerate(read_name_list(lay.path(lay.relations)))}
            kg = {s: read_tsv_triples(lay.path(lay.splits[s]), e_index, r_index,
                                      lay.entities, lay.relations) for s in SPLITS}
            ents, rels = list(e_index), list(r_index)  # dicts keep id order
        kg.update(entity_names=ents, relation_names=rels)
        self._featurize_raw(ents)
        features, masks = {}, {}
        for m, spec in ({} if self.store_features else lay.features).items():
            mask = None if spec.mask is None else read_mask_file(lay.path(spec.mask), ents)
            dtype = None if spec.dtype is None else FEATURE_DTYPES[spec.dtype]
            features[m], masks[m] = read_feature_file(lay.path(spec.file), len(ents),
                                                      self.nan_rows, self.zero_rows_missing,
                                                      mask=mask, dtype=dtype)
        return kg, features, masks

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.root}, modalities={self.modalities})'


def is_mmkg_folder(path: str) -> bool:
    """Whether ``path`` is a folder :func:`load_folder` can read by its
    file names or manifest (not whether its files are well formed)."""
    if not osp.isdir(path):
        return False
    return bool(found_files(path, MANIFEST, 'train2id.txt', 'entity2id.txt', 'train.tsv',
                       'train.txt') or found_files(osp.join(path, 'raw'), 'entity2id.txt'))


def load_folder(path: str, **kwargs) -> MMKGDataset:
    """The dataset of a folder: a :class:`FolderMMKG`, or an
    :class:`MMKGDataset` for a folder laid out as one (OpenKE files in
    ``path/raw/``, released ``{name}-{visual,...}.pth`` feature files there
    too; e.g. a WildKGC dataset directory). ``path`` may also be the
    manifest file itself (``my_kg/mmkg.yaml``).

    Args:
        path (str): The folder (``~`` is expanded).
        **kwargs: Options of :class:`FolderMMKG`.
    """
    path = osp.expanduser(path)
    if osp.isfile(path) and path.endswith(('.yaml', '.yml')):
        return FolderMMKG(osp.dirname(path) or '.', manifest=osp.basename(path), **kwargs)
    if not osp.exists(path):
        raise MMKGFormatError(f"{path}: no such dataset folder")
    if not osp.isdir(path):
        raise MMKGFormatError(f"{path}: not a folder (give the folder holding the triple "
                              f"files, or its {MANIFEST})")
    top = found_files(path, MANIFEST, 'train2id.txt', 'entity2id.txt', 'train.tsv', 'train.txt',
                 'valid.tsv', 'test.tsv')
    if not top and found_files(osp.join(path, 'raw'), 'entity2id.txt'):
        for key in ('manifest', 'name', 'store_features'):  # a FolderMMKG's options
            kwargs.pop(key, None)
        return MMKGDataset(path, **kwargs)
    return FolderMMKG(path, **kwargs)
