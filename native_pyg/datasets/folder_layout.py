"""How a dataset folder is laid out (the format :mod:`native_pyg.datasets.folder`
describes): split and feature files found by their names, or named by the
manifest ``mmkg.yaml``, whose every error names the file, line and key."""
from __future__ import annotations

import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from native_pyg.data.readers import FEATURE_DTYPES, SPLIT_FILES, MMKGFormatError, read_text
from native_pyg.data.yaml_bounds import safe_load
from native_pyg.features.raw_inputs import RawInputs

MANIFEST = 'mmkg.yaml'
OPENKE_FILES = ('entity2id.txt', 'relation2id.txt', *SPLIT_FILES.values())
SPLITS = ('train', 'valid', 'test')
FEATURE_EXTS = ('.npy', '.pt', '.pth')
MASK_EXTS = ('.npy', '.pt', '.pth', '.txt')
MANIFEST_KEYS = ('name', 'description', 'format', 'entities', 'relations', 'splits',
                 'features')
FEATURE_KEYS = ('file', 'mask', 'dtype')
#: a modality's raw inputs (one of them instead of ``file``), and how they are encoded
RAW_KEYS = ('images', 'image_dir', 'text', 'numeric')
RAW_OPTIONS = ('model', 'weights', 'pool', 'normalize', 'batch_size')
#: where a folder's raw inputs are featurized to, under its processed files
RAW_FEATURES_DIR = osp.join('processed', 'raw_features')
_MODALITY = re.compile(r'^[A-Za-z][A-Za-z0-9_-]*$')


@dataclass
class FeatureSpec:
    """One modality's files (paths relative to the folder, or absolute); for
    a modality given as raw inputs (``raw``), the files they are featurized
    to on first use."""
    file: str
    mask: Optional[str] = None
    dtype: Optional[str] = None
    raw: Optional[RawInputs] = None


@dataclass
class FolderLayout:
    """What :func:`find_layout` found in a folder: the triple format, the
    files of the splits and name lists, and the feature files per modality
    (paths relative to ``folder``, or absolute)."""
    folder: str
    name: str
    format: str  # 'openke' or 'tsv'
    splits: Dict[str, str]
    entities: Optional[str] = None
    relations: Optional[str] = None
    features: Dict[str, FeatureSpec] = field(default_factory=dict)
    manifest: Optional[str] = None

    def path(self, rel: str) -> str:
        """``rel`` joined to the folder (an absolute path stays as it is)."""
        return osp.join(self.folder, rel)

    def files(self) -> List[str]:
        """Every file read, relative to the folder: the manifest, the name
        lists, the splits, then the feature and mask files."""
        out = [f for f in (self.manifest, self.entities, self.relations) if f]
        out += [self.splits[s] for s in SPLITS]
        for spec in self.features.values():
            if spec.raw is not None:  # the inputs, not the files made from them
                out += [spec.raw.path] + ([spec.raw.weights] if _is_file(spec.raw.weights)
                                          else [])
            else:
                out += [f for f in (spec.file, spec.mask) if f]
        return out

    def describe(self) -> str:
        """What was found, in words (``native-pyg stats`` prints it)."""
        how = f'described by {self.manifest}' if self.manifest else 'found by file names'
        kind = 'OpenKE ids' if self.format == 'openke' else 'TSV of names'
        lines = [f"{self.name} ({self.folder}, {how})",
                 f"  triples: {kind}: {', '.join(self.splits[s] for s in SPLITS)}"]
        order = 'first appearance in train, valid, test'
        lines.append(f"  entities: {self.entities or order}; "
                     f"relations: {self.relations or order}")
        feats = []
        for m, spec in self.features.items():
            if spec.raw is not None:
                model = spec.raw.model or ('default' if spec.raw.kind != 'numeric' else
                                           f'normalize {spec.raw.normalize}')
                feats.append(f"{m} from {spec.raw.kind} {osp.relpath(spec.raw.path, self.folder)}"
                             f" ({model})")
                continue
            extra = [f'mask {spec.mask}'] if spec.mask else []
            extra += [spec.dtype] if spec.dtype else []
            feats.append(f"{m} {spec.file}" + (f" ({', '.join(extra)})" if extra else ''))
        lines.append(f"  features: {'; '.join(feats) if feats else 'none (structure only)'}")
        return '\n'.join(lines)


def _is_file(weights: Optional[str]) -> bool:
    """Whether image ``weights`` name a file (not ``none`` or ``default``)."""
    return weights is not None and weights not in ('none', 'default')


def found_files(folder: str, *names: str) -> List[str]:
    return [n for n in names if osp.isfile(osp.join(folder, n))]


def _convention_splits(folder: str) -> Tuple[str, Dict[str, str]]:
    """``(format, {split: file})`` found by file names, or an error saying
    what is missing."""
    if found_files(folder, 'train2id.txt', 'entity2id.txt'):
        missing = [f for f in OPENKE_FILES if not found_files(folder, f)]
        if missing:
            raise MMKGFormatError(f"{folder}: OpenKE files incomplete: missing "
                                  f"{', '.join(missing)}")
        return 'openke', dict(SPLIT_FILES)
    splits, missing = {}, []
    for s in SPLITS:
        have = found_files(folder, f'{s}.tsv', f'{s}.txt')
        if len(have) == 2:
            raise MMKGFormatError(f"{folder}: both {s}.tsv and {s}.txt are there; keep one")
        if have:
            splits[s] = have[0]
        else:
            dirs = [n for n in (f'{s}.tsv', f'{s}.txt') if osp.isdir(osp.join(folder, n))]
            missing.append(f'{s}.tsv' + (f' ({dirs[0]} is a directory, not a file)'
                                         if dirs else ''))
    if splits and missing:
        raise MMKGFormatError(f"{folder}: TSV splits incomplete: missing {', '.join(missing)}")
    if not splits:
        raise MMKGFormatError(
            f"{folder}: no MMKG found: expected {MANIFEST}, OpenKE files "
            f"({', '.join(OPENKE_FILES)}) or TSV splits (train.tsv, valid.tsv, test.tsv)")
    return 'tsv', splits


def _check_modality(name: str, where: str) -> None:
    if name == 'entity' or not _MODALITY.match(name):
        raise MMKGFormatError(f"{where}: {name!r} cannot name a modality (letters, digits, "
                              f"'_' and '-', starting with a letter; 'entity' is reserved)")


def _convention_features(folder: str) -> Dict[str, FeatureSpec]:
    """``features/<modality>.{npy,pt,pth}`` with ``<modality>.mask.*``."""
    fdir = osp.join(folder, 'features')
    if not osp.isdir(fdir):
        return {}
    files = sorted(f for f in os.listdir(fdir) if osp.isfile(osp.join(fdir, f)))
    feats: Dict[str, FeatureSpec] = {}
    masks: Dict[str, str] = {}
    for f in files:
        stem, ext = osp.splitext(f)
        if stem.endswith('.mask') and ext in MASK_EXTS:
            m = stem[:-len('.mask')]
            if m in masks:
                raise MMKGFormatError(f"{fdir}: two masks for {m!r} ({masks[m]}, {f}); keep one")
            masks[m] = f
        elif ext in FEATURE_EXTS:
            _check_modality(stem, osp.join(fdir, f))
            if stem in feats:
                raise MMKGFormatError(f"{fdir}: two feature files for {stem!r} "
                                      f"({osp.basename(feats[stem].file)}, {f}); keep one")
            feats[stem] = FeatureSpec(osp.join('features', f))
    for m, f in masks.items():
        if m not in feats:
            raise MMKGFormatError(f"{osp.join(fdir, f)}: a mask for {m!r}, but there is no "
                                  f"features/{m}.npy (.pt, .pth)")
        feats[m].mask = osp.join('features', f)
    return feats


def _yaml_key_lines(path: str, text: str) -> Dict[Tuple[str, ...], int]:
    """Line number of every mapping key of a YAML text (``('splits',
    'train')`` -> 7); a key given twice is an error."""
    import yaml
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: Dict[Tuple[str, ...], int] = {}

    def walk(node: Any, at: Tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = at + (str(k.value), )
                if key in lines:
                    raise MMKGFormatError(f"{path}:{k.start_mark.line + 1}: "
                                          f"{'.'.join(key)} is given twice (first on line "
                                          f"{lines[key]})")
                lines[key] = k.start_mark.line + 1
                walk(v, key)
    walk(node, ())
    return lines


class _Manifest:
    """Reads ``mmkg.yaml``; every error names the file, line and key."""

    def __init__(self, folder: str, fname: str) -> None:
        import yaml
        self.folder, self.fname = folder, fname
        self.path = osp.join(folder, fname)
        text = read_text(self.path)
        try:
            self.doc = safe_load(text)  # aliases bounded before anything walks it
            self.lines = _yaml_key_lines(self.path, text)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = f":{mark.line + 1}" if mark is not None else ''
            raise MMKGFormatError(f"{self.path}{line}: not valid YAML "
                                  f"({e.problem or e.context})") from None
        except yaml.YAMLError as e:
            raise MMKGFormatError(f"{self.path}: not valid YAML ({e})") from None

    def error(self, key: Tuple[str, ...], message: str) -> MMKGFormatError:
        """An error at the line of ``key`` (the nearest given parent key)."""
        k = key
        while k and k not in self.lines:
            k = k[:-1]
        line = f":{self.lines[k]}" if k else ''
        where = f" {'.'.join(key)}:" if key else ''
        return MMKGFormatError(f"{self.path}{line}:{where} {message}")

    def mapping(self, value: Any, key: Tuple[str, ...], allowed: Tuple[str, ...]) -> Dict:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping of keys ({', '.join(allowed)}), "
                                  f"got {type(value).__name__}")
        for k in value:
            if str(k) not in allowed:
                raise self.error(key + (str(k), ), f"unknown key {str(k)!r} (expected one "
                                                   f"of: {', '.join(allowed)})")
        return value

    def file(self, value: Any, key: Tuple[str, ...], exts: Tuple[str, ...] = ()) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a file name, got {value!r}")
        value = osp.expanduser(value.strip())
        if exts and not value.endswith(exts):
            raise self.error(key, f"{value!r}: expected a {' / '.join(exts)} file")
        if not osp.isfile(osp.join(self.folder, value)):
            raise self.error(key, f"file {value!r} not found in {self.folder}")
        return value

    def layout(self) -> FolderLayout:
        doc = {} if self.doc is None else self.doc
        doc = self.mapping(doc, (), MANIFEST_KEYS)
        name = doc.get('name', osp.basename(osp.normpath(osp.abspath(self.folder))))
        if not isinstance(name, str) or not name.strip():
            raise self.error(('name', ), f"expected a name, got {name!r}")
        if 'splits' in doc:
            raw = self.mapping(doc['splits'], ('splits', ), SPLITS)
            missing = [s for s in SPLITS if s not in raw]
            if missing:
                raise self.error(('splits', ), f"missing {', '.join(missing)}")
            splits = {s: self.file(raw[s], ('splits', s)) for s in SPLITS}
            guess = 'openke' if all(f.endswith('2id.txt') for f in splits.values()) else 'tsv'
        else:
            try:
                guess, splits = _convention_splits(self.folder)
            except MMKGFormatError as e:
                raise self.error((), f"no 'splits' key, and by file names: {e}") from None
        fmt = doc.get('format', guess)
        if fmt not in ('openke', 'tsv'):
            raise self.error(('format', ), f"expected 'openke' or 'tsv', got {fmt!r}")
        lists = {}
        for key, openke_name, tsv_name in (('entities', 'entity2id.txt', 'entities.txt'),
                                           ('relations', 'relation2id.txt', 'relations.txt')):
            if key in doc:
                lists[key] = self.file(doc[key], (key, ))
            elif fmt == 'openke':
                if not found_files(self.folder, openke_name):
                    raise self.error((), f"format openke needs '{key}' ({openke_name} is "
                                         f"not in {self.folder})")
                lists[key] = openke_name
            else:
                lists[key] = (found_files(self.folder, tsv_name) or [None])[0]
        if 'features' in doc:
            features = {}
            raw = doc['features'] or {}
            if not isinstance(raw, dict):
                raise self.error(('features', ), f"expected a mapping of modality to file, "
                                                 f"got {type(raw).__name__}")
            for m, spec in raw.items():
                key = ('features', str(m))
                try:
                    _check_modality(str(m), 'x')
                except MMKGFormatError as e:
                    raise self.error(key, str(e)[len('x: '):]) from None
                features[str(m)] = self.feature(spec, key, name.strip())
        else:
            features = _convention_features(self.folder)
        return FolderLayout(self.folder, name.strip(), fmt, splits, lists['entities'],
                            lists['relations'], features, self.fname)

    def feature(self, spec: Any, key: Tuple[str, ...], dataset: str) -> FeatureSpec:
        if isinstance(spec, str):
            return FeatureSpec(self.file(spec, key, FEATURE_EXTS))
        spec = self.mapping(spec, key, FEATURE_KEYS + RAW_KEYS + RAW_OPTIONS)
        raw = [k for k in RAW_KEYS if k in spec]
        if raw:
            return self.raw_feature(spec, key, raw, dataset)
        options = [k for k in RAW_OPTIONS if k in spec]
        if options:
            raise self.error(key + (options[0], ), f"an option of raw inputs ({', '.join(RAW_KEYS)})"
                                                   f", given with a feature file")
        if 'file' not in spec:
            raise self.error(key, f"missing 'file' (or raw inputs: {', '.join(RAW_KEYS)})")
        out = FeatureSpec(self.file(spec['file'], key + ('file', ), FEATURE_EXTS))
        if spec.get('mask') is not None:
            out.mask = self.file(spec['mask'], key + ('mask', ), MASK_EXTS)
        if spec.get('dtype') is not None:
            if spec['dtype'] not in FEATURE_DTYPES:
                raise self.error(key + ('dtype', ), f"expected one of "
                                                    f"{', '.join(FEATURE_DTYPES)}, got "
                                                    f"{spec['dtype']!r}")
            out.dtype = spec['dtype']
        return out

    def raw_feature(self, spec: Dict, key: Tuple[str, ...], raw: List[str],
                    dataset: str) -> FeatureSpec:
        """A modality given as raw inputs: ``{images: images.tsv, model:
        resnet50, weights: PATH}`` and the like, featurized on first use to
        ``processed/raw_features/<dataset>/<modality>.npy``."""
        given = [k for k in FEATURE_KEYS if k in spec] + raw[1:]
        if given:
            raise self.error(key + (given[0], ), f"raw inputs ({raw[0]}) and {given[0]!r} "
                                                 f"together; give one of them")
        kind = raw[0]
        if kind == 'image_dir':
            path = spec[kind]
            if not isinstance(path, str) or not osp.isdir(osp.join(self.folder, path)):
                raise self.error(key + (kind, ), f"folder {path!r} not found in {self.folder}")
        else:
            path = self.file(spec[kind], key + (kind, ))
        weights = spec.get('weights')
        weights = None if weights is None else str(weights)
        if _is_file(weights):
            weights = osp.join(self.folder, self.file(weights, key + ('weights', )))
        try:
            inputs = RawInputs(kind, osp.join(self.folder, path), model=spec.get('model'),
                               weights=weights, pool=spec.get('pool', 'mean'),
                               normalize=spec.get('normalize', 'zscore'),
                               batch_size=int(spec.get('batch_size', 32)))
        except (TypeError, ValueError) as e:
            raise self.error(key, str(e)) from None
        modality = key[-1]
        out = osp.join(RAW_FEATURES_DIR, dataset, modality)
        return FeatureSpec(out + '.npy', out + '.mask.npy', 'float16', raw=inputs)


def find_layout(folder: str, manifest: Optional[str] = None) -> FolderLayout:
    """What a folder holds: read from its manifest (``mmkg.yaml``, or the
    file ``manifest`` names) if there is one, else found by file names (see
    the module's documentation).

    Raises:
        MMKGFormatError: One line naming the file (and line, key) at fault.
    """
    if not osp.isdir(folder):
        raise MMKGFormatError(f"{folder}: not a directory")
    if manifest is None and osp.isfile(osp.join(folder, MANIFEST)):
        manifest = MANIFEST
    if manifest is not None:
        return _Manifest(folder, manifest).layout()
    fmt, splits = _convention_splits(folder)
    if fmt == 'openke':
        ents, rels = 'entity2id.txt', 'relation2id.txt'
    else:
        ents = (found_files(folder, 'entities.txt') or [None])[0]
        rels = (found_files(folder, 'relations.txt') or [None])[0]
    return FolderLayout(folder, osp.basename(osp.normpath(osp.abspath(folder))), fmt, splits,
                        ents, rels, _convention_features(folder))
