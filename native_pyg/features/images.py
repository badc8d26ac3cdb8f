r"""An image modality: each entity's image files, encoded by an image encoder
(:mod:`native_pyg.features.image_encoders`) and pooled into one row.

:class:`ImageRows` is the :class:`~native_pyg.features.featurize.RowSource`
of images: given a chunk of entities it decodes their images with Pillow a
batch at a time, encodes each batch, and pools the rows of an entity's
images (``'mean'``, ``'max'``, or the ``'first'`` readable one). A file that
is missing or cannot be decoded is skipped and counted, never an error.
:func:`list_image_folder` reads the usual layout of one folder per entity::

    images/<entity name>/<any name>.jpg
"""
from __future__ import annotations

import hashlib
import os
import os.path as osp
import warnings
from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from native_pyg.features.featurize import RowChunk
from native_pyg.features.image_encoders import ImageEncoder

#: how the rows of an entity's images become its row
pool_modes = ('mean', 'max', 'first')
#: the file extensions :func:`list_image_folder` takes as images (any case)
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.gif', '.bmp', '.webp', '.tif', '.tiff')


def list_image_folder(directory: str, entity_index: Mapping[str, int]
                      ) -> Tuple[Dict[int, List[str]], List[str]]:
    r"""The images of a folder with one sub-folder per entity.

    Args:
        directory (str): Holds a sub-folder per entity, named exactly as the
            entity, with its images (by extension, see
            :data:`IMAGE_EXTENSIONS`) inside.
        entity_index (Mapping[str, int]): Entity name to entity id.

    Returns:
        ``(images, unknown)``: entity id to its image paths, relative to
        ``directory`` (``'<sub-folder>/<file>'``, files sorted by name; pass
        ``root=directory`` to :class:`ImageRows`; entities without an image
        file are left out), and the sub-folder names that name no entity,
        sorted.
    """
    images: Dict[int, List[str]] = {}
    unknown: List[str] = []
    for name in sorted(os.listdir(directory)):
        folder = osp.join(directory, name)
        if not osp.isdir(folder):
            continue
        if name not in entity_index:
            unknown.append(name)
            continue
        # relative: the image list keeps its identity when the folder moves
        files = [osp.join(name, f) for f in sorted(os.listdir(folder))
                 if f.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(osp.join(folder, f))]
        if files:
            images[int(entity_index[name])] = files
    return images, unknown


def _decode(path: str):
    """``(image, None)``, or ``(None, reason)`` for a file that cannot be used."""
    from PIL import Image
    with warnings.catch_warnings():  # e.g. corrupt EXIF: one per file would flood the log
        warnings.simplefilter('ignore')
        warnings.simplefilter('default', Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                image.load()  # here, so that a truncated file fails inside the try
                return image.convert('RGB'), None
        except FileNotFoundError:
            return None, 'missing'
        except Exception:  # Pillow raises many kinds for a broken file
            return None, 'unreadable'


class ImageRows:
    r"""The rows of an image modality: per entity, its images encoded and
    pooled.

    Args:
        images (Mapping[int, Sequence[str]]): Entity id to its image files
            (e.g. from :func:`list_image_folder`).
        encoder (ImageEncoder): Encodes a batch of images
            (:func:`~native_pyg.features.image_encoders.load_image_encoder`).
        pool (str): How an entity's image rows become its row: ``'mean'``,
            ``'max'``, or ``'first'`` (the first readable image).
            (default: ``'mean'``)
        batch_size (int): At most this many decoded images are held and
            encoded at a time. (default: :obj:`32`)
        root (str, optional): Relative image paths are relative to this
            folder. (default: :obj:`None`: the working directory)
    """

    def __init__(self, images: Mapping[int, Sequence[str]], encoder: ImageEncoder,
                 pool: str = 'mean', batch_size: int = 32, root: Optional[str] = None):
        if pool not in pool_modes:
            raise ValueError(f"image pooling must be one of {pool_modes}, got {pool!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.images = {int(e): list(paths) for e, paths in images.items()}
        self.encoder = encoder
        self.pool = pool
        self.batch_size = int(batch_size)
        self.root = root
        self.dim = encoder.dim

    def _resolve(self, path: str) -> str:
        return osp.join(self.root, path) if self.root and not osp.isabs(path) else path

    def image_list_identity(self) -> Dict[str, Any]:
        """The identity of the image list: a sha256 over each (entity, path,
        size, modification time), from the files' metadata only (no image is
        read), with the numbers of entities and files."""
        digest = hashlib.sha256()
        files = 0
        for entity in sorted(self.images):
            for path in self.images[entity]:
                try:
                    stat = os.stat(self._resolve(path))
                    size, mtime = stat.st_size, stat.st_mtime_ns
                except OSError:  # missing now: a file that appears later changes the identity
                    size, mtime = -1, -1
                digest.update(f'{entity}\t{path}\t{size}\t{mtime}\n'.encode())
                files += 1
        return {'entities': len(self.images), 'files': files, 'sha256': digest.hexdigest()}

    def settings(self) -> Dict[str, Any]:
        """The encoder's settings, the pooling and the identity of the image
        list (:meth:`image_list_identity`: one ``stat`` per file)."""
        return {'encoder': self.encoder.settings(), 'pool': self.pool,
                'images': self.image_list_identity()}

    def rows(self, entities: np.ndarray) -> RowChunk:
        """The pooled rows of ``entities`` (``[k]`` ids), in that order."""
        entities = np.asarray(entities, dtype=np.int64).reshape(-1)
        rows = np.zeros((len(entities), self.dim), dtype=np.float32)
        counts = np.zeros(len(entities), dtype=np.int32)
        skipped: Counter = Counter()
        batch: List[Tensor] = []
        owners: List[int] = []  # the position in the chunk of each image in batch

        def encode_batch():
            coded = self.encoder.encode(torch.stack(batch)).numpy()
            for position, row in zip(owners, coded):
                if counts[position] == 0 or self.pool == 'first':
                    rows[position] = row
                elif self.pool == 'mean':
                    rows[position] += row  # a sum until the end
                else:
                    np.maximum(rows[position], row, out=rows[position])
                counts[position] += 1
            batch.clear()
            owners.clear()

        for position, entity in enumerate(entities.tolist()):
            for path in self.images.get(entity, ()):
                image, reason = _decode(self._resolve(path))
                if image is None:
                    skipped[reason] += 1
                    continue
                batch.append(self.encoder.transform(image))
                owners.append(position)
                if len(batch) == self.batch_size:
                    encode_batch()
                if self.pool == 'first':
                    break  # the first readable image is the row: no more to decode
        if batch:
            encode_batch()
        mask = counts > 0
        if self.pool == 'mean':
            rows[mask] /= counts[mask, None]
        return RowChunk(rows, mask, counts, dict(skipped))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({len(self.images)} entities, '
                f'{self.encoder!r}, pool={self.pool!r})')
