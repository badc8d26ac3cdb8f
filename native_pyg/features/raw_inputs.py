"""A modality's raw inputs, as ``native-pyg featurize`` and a folder's
manifest name them, and the :class:`~native_pyg.features.featurize.RowSource`
that encodes them:

- ``images``: a TSV of ``entity<TAB>path`` (several rows per entity allowed),
  or ``image_dir``: a folder with one sub-folder of images per entity;
  encoded by a torchvision model or a CLIP image tower, pooled per entity
  (:mod:`native_pyg.features.images`);
- ``text``: a TSV of ``entity<TAB>description``, encoded by a
  sentence-transformers model (:mod:`native_pyg.features.descriptions`);
- ``numeric``: a TSV of ``entity<TAB>attribute<TAB>value``, one normalised
  column per attribute with its presence beside it
  (:mod:`native_pyg.features.numeric`).
"""
from __future__ import annotations

import os
import os.path as osp
import sys
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from native_pyg.features.featurize import FeaturizeReport, RowSource, featurize, is_featurized
from native_pyg.features.images import IMAGE_EXTENSIONS
from native_pyg.features.images import pool_modes as POOLS
from native_pyg.features.numeric import NORMALIZATIONS

#: the kinds of raw input, each with the modality it makes by default
KINDS = {'images': 'image', 'image_dir': 'image', 'text': 'text', 'numeric': 'numeric'}
#: the default image model (torchvision)
DEFAULT_IMAGE_MODEL = 'resnet50'


@dataclass(frozen=True)
class RawInputs:
    """One modality's raw inputs and how to encode them.

    Args:
        kind (str): ``'images'``, ``'image_dir'``, ``'text'`` or
            ``'numeric'``.
        path (str): The table (or, for ``image_dir``, the folder).
        model (str, optional): The encoder: a torchvision model name or
            ``clip:ARCH`` for images (default: :data:`DEFAULT_IMAGE_MODEL`),
            a sentence-transformers name or path for text (default: the
            offline default). (default: :obj:`None`)
        weights (str, optional): Image weights: ``'default'`` (the model's
            own, downloaded where the machine can fetch them), a local file,
            or ``'none'`` (random, to try the pipeline without a download).
            (default: :obj:`None`: ``'default'``)
        pool (str, optional): Several images of one entity: ``'mean'``,
            ``'max'`` or ``'first'``. (default: ``'mean'``)
        normalize (str, optional): A numeric attribute's normalisation,
            fit on all entities that have it: ``'zscore'``, ``'minmax'``,
            ``'rank'`` or ``'none'``. (default: ``'zscore'``)
        batch_size (int, optional): Images or texts encoded at a time.
            (default: ``32``)
        device (str, optional): Where the encoder runs. (default: ``'cpu'``)
    """
    kind: str
    path: str
    model: Optional[str] = None
    weights: Optional[str] = None
    pool: str = 'mean'
    normalize: str = 'zscore'
    batch_size: int = 32
    device: str = 'cpu'

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"raw inputs: unknown kind {self.kind!r}; expected one of "
                             f"{', '.join(KINDS)}")
        if self.pool not in POOLS:
            raise ValueError(f"pool {self.pool!r}: expected one of {', '.join(POOLS)}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize {self.normalize!r}: expected one of "
                             f"{', '.join(NORMALIZATIONS)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size {self.batch_size}: expected a positive number")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def row_source(inputs: RawInputs, entity_index: Mapping[str, int],
               num_entities: int) -> Tuple[RowSource, List[str]]:
    """The row source of ``inputs`` for a dataset whose entity ``name`` is
    row ``entity_index[name]``, and the lines that say what was read (rows,
    entities, names not in the dataset).

    Raises:
        MMKGFormatError: A malformed table, naming the file and line.
        ImportError: The encoder's extra is not installed (one line with
            the ``pip install``).
    """
    if inputs.kind == 'numeric':
        from native_pyg.features.numeric import NumericRows
        source = NumericRows.from_table(inputs.path, entity_index, num_entities,
                                        normalize=inputs.normalize)
        return source, [source.report.line()]
    if inputs.kind == 'text':
        from native_pyg.features.descriptions import DescriptionRows
        from native_pyg.features.raw_tables import read_entity_values
        from native_pyg.features.text import DEFAULT_TEXT_MODEL
        texts, report = read_entity_values(inputs.path, entity_index)
        joined = {e: ' '.join(parts) for e, parts in texts.items()}
        return DescriptionRows(joined, model=inputs.model or DEFAULT_TEXT_MODEL,
                               device=inputs.device, batch_size=inputs.batch_size), [report.line()]
    from native_pyg.features.image_encoders import load_image_encoder
    from native_pyg.features.images import ImageRows, list_image_folder
    if inputs.kind == 'images':
        from native_pyg.features.raw_tables import read_entity_values
        images, report = read_entity_values(inputs.path, entity_index)
        lines, root = [report.line()], osp.dirname(osp.abspath(inputs.path))
    else:
        if not osp.isdir(inputs.path):
            raise ValueError(f"{inputs.path}: not a folder (expected one sub-folder of images "
                             f"per entity)")
        images, unknown = list_image_folder(inputs.path, entity_index)
        lines, root = [f"{inputs.path}: images of {len(images):,} entities"
                       + (f"; {len(unknown):,} sub-folders name no entity (e.g. "
                          f"{unknown[0]!r})" if unknown else '')], inputs.path
    weights = 'default' if inputs.weights is None else inputs.weights
    encoder = load_image_encoder(inputs.model or DEFAULT_IMAGE_MODEL, weights=weights,
                                 device=inputs.device)
    return ImageRows(images, encoder, pool=inputs.pool, batch_size=inputs.batch_size,
                     root=root), lines


def featurize_raw(inputs: RawInputs, names: Sequence[str], out_dir: str, modality: str,
                  progress: bool = True) -> Optional[FeaturizeReport]:
    """Featurizes ``inputs`` for the entities ``names`` (row ``i`` is entity
    ``names[i]``) into ``out_dir`` (:func:`~native_pyg.features.featurize.featurize`),
    unless the files there were made with the same settings already (then
    :obj:`None`): a folder's manifest naming raw inputs is featurized on
    first use, and again when an input, the model or its weights change."""
    index = {name: i for i, name in enumerate(names)}
    source, lines = row_source(inputs, index, len(names))
    if is_featurized(source, len(names), out_dir, modality):
        return None
    if progress:
        for line in lines:
            print(line, file=sys.stderr)
    return featurize(source, len(names), out_dir, modality, overwrite=True, progress=progress)


def input_files(inputs: RawInputs) -> List[str]:
    """The files the rows of ``inputs`` are made from beyond its table: the
    images a table lists or a folder holds (whose state keys a folder's
    processed cache, so that an image replaced under the same name is
    featurized again). Lenient: a malformed table lists what it can, and
    its errors are :func:`row_source`'s."""
    from native_pyg.data.readers import MMKGFormatError, text_lines
    if inputs.kind == 'image_dir':
        found = []
        for sub in sorted(os.listdir(inputs.path)) if osp.isdir(inputs.path) else []:
            folder = osp.join(inputs.path, sub)
            if osp.isdir(folder):
                found += [osp.join(folder, f) for f in sorted(os.listdir(folder))
                          if f.lower().endswith(IMAGE_EXTENSIONS)]
        return found
    if inputs.kind != 'images':
        return []
    root, found = osp.dirname(osp.abspath(inputs.path)), []
    try:
        for _, line in text_lines(inputs.path):
            name, tab, path = line.partition('\t')
            if tab and path.strip() and not line.lstrip().startswith('#'):
                found.append(osp.join(root, path.strip()))
    except MMKGFormatError:
        pass
    return sorted(set(found))
