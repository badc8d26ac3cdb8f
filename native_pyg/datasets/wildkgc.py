"""The WildKGC benchmark (DB15K, MKG-W, MKG-Y, TIVA, KVC16K)."""
from __future__ import annotations

import os
import os.path as osp
import warnings
from typing import Callable, Optional

from torch_geometric.data import download_url

from native_pyg.data.readers import find_feature_files
from native_pyg.datasets.checksums import SHA256, ChecksumError, canonical_sha256, sha256_of
from native_pyg.datasets.mmkg import MMKGDataset
from native_pyg.features.text import DEFAULT_TEXT_MODEL


class WildKGC(MMKGDataset):
    r"""The WildKGC multi-modal KG completion benchmark of
    `"NativE: Multi-modal Knowledge Graph Completion in the Wild"
    <https://arxiv.org/abs/2406.17605>`_ (SIGIR 2024).

    ======== ========= ========= ======= ====== ====== =============================
    name     entities  relations train   valid  test   released modalities
    ======== ========= ========= ======= ====== ====== =============================
    DB15K    12,842    279       79,222  9,904  9,902  image, text, numeric
    MKG-W    15,000    169       34,196  4,276  4,274  image, text
    MKG-Y    15,000    28        21,310  2,665  2,663  image, text
    TIVA     11,858    16        20,071  2,000  2,000  image, text, audio, video
    KVC16K   16,015    4         180,190 22,523 22,525 image, text, audio, video
    ======== ========= ========= ======= ====== ====== =============================

    The triples are downloaded from the authors' repository and checked
    against the SHA-256 sums of the released files (a mismatch is an error
    naming the file and saying whether only line endings or whitespace
    differ; ``verify=False`` reads the files as they are). The released *feature* files
    (``{prefix}-{visual,textual,numeric,audio,video}.pth``) are hosted on a
    cloud drive that cannot be fetched automatically: place them in
    ``root/<name>/raw/`` (see ``datasets/<name>.md``); an absent file means
    that modality is absent, with a warning. The released triples keep their
    quirks (duplicates, valid/test rows also in train) for comparability with
    published numbers; ``dedupe=True`` and ``remove_leakage=True`` clean them.

    Args:
        root (str): Root directory; files go to ``root/<name>/{raw,processed}``.
        name (str): One of ``DB15K``, ``MKG-W``, ``MKG-Y``, ``TIVA``, ``KVC16K``.
        verify (bool): Check the raw triple files against the released
            SHA-256 sums (default: ``True``).

    ``text_features='names'`` adds a ``text`` modality encoded from the
    entity names (DBpedia URIs read as titles, YAGO underscores as spaces,
    TIVA as is); MKG-W names entities by Wikidata ids only, so it has no
    text to encode; KVC16K's names are Chinese, for which the default
    English model is a poor fit (give ``text_model``).
        **kwargs: See :class:`MMKGDataset` (``dedupe``, ``remove_leakage``,
            ``nan_rows``, ``zero_rows_missing``, ``transform``,
            ``pre_transform``, ``force_reload``).
    """
    url = 'https://raw.githubusercontent.com/zjukg/NATIVE/HEAD/benchmarks/{dir}/{file}'
    #: dataset name -> directory in the authors' repository
    dirs = {'DB15K': 'DB15K', 'MKG-W': 'MKG-W', 'MKG-Y': 'MKG-Y', 'TIVA': 'TIVA',
            'KVC16K': 'Kuai16K'}
    released_modalities = {
        'DB15K': ('image', 'text', 'numeric'),
        'MKG-W': ('image', 'text'),
        'MKG-Y': ('image', 'text'),
        'TIVA': ('image', 'text', 'audio', 'video'),
        'KVC16K': ('image', 'text', 'audio', 'video'),
    }

    #: how each dataset's entity names read (``text_features='names'``)
    name_styles = {'DB15K': 'dbpedia', 'MKG-W': 'wikidata', 'MKG-Y': 'yago', 'TIVA': 'plain',
                   'KVC16K': 'plain'}

    def __init__(self, root: str, name: str, transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None, force_reload: bool = False,
                 verify: bool = True, **kwargs) -> None:
        key = {k.lower(): k for k in self.dirs}.get(name.lower().replace('kuai16k', 'kvc16k'))
        if key is None:
            raise ValueError(f"unknown WildKGC dataset {name!r}; expected one of "
                             f"{', '.join(self.dirs)}")
        self.name, self.verify = key, verify
        if kwargs.get('text_features') == 'names':
            if key == 'MKG-W':
                raise ValueError("MKG-W names its entities by Wikidata ids only (e.g. Q370252): "
                                 "there is no text to encode, so no text modality from names")
            kwargs.setdefault('name_style', self.name_styles[key])
            if key == 'KVC16K' and kwargs.get('text_model', DEFAULT_TEXT_MODEL) == \
                    DEFAULT_TEXT_MODEL:
                warnings.warn("KVC16K names are Chinese; the default English model "
                              "(all-MiniLM-L6-v2) is a poor fit: pass text_model=<a multilingual "
                              "sentence-transformers model name or path>", stacklevel=2)
        self.expected_modalities = self.released_modalities[key]
        kwargs.setdefault('prefix', key)
        super().__init__(osp.join(root, key), transform=transform,
                         pre_transform=pre_transform, force_reload=force_reload, **kwargs)

    def feature_files(self):
        files = super().feature_files()
        if self.dirs[self.name] != self.prefix:  # KVC16K's files may carry the old name
            files = {**find_feature_files(self.raw_dir, self.dirs[self.name]), **files}
        return files

    def download(self) -> None:
        os.makedirs(self.raw_dir, exist_ok=True)
        for f in self.raw_file_names:
            if not osp.exists(osp.join(self.raw_dir, f)):
                url = self.url.format(dir=self.dirs[self.name], file=f)
                try:
                    download_url(url, self.raw_dir, log=self.log)
                except OSError as e:  # no network, proxy, HTTP error
                    raise ConnectionError(
                        f"cannot download {url} ({getattr(e, 'reason', e)}); without network "
                        f"access, copy the OpenKE files ({', '.join(self.raw_file_names)}) "
                        f"into {self.raw_dir}") from None
        self.verify_raw()

    def verify_raw(self) -> None:
        if not self.verify:
            return
        for f in self.raw_file_names:
            path = osp.join(self.raw_dir, f)
            expected = SHA256[f'{self.dirs[self.name]}/{f}']
            got = sha256_of(path)
            if got == expected:
                continue
            if canonical_sha256(path) == expected:
                raise ChecksumError(
                    f"{path}: differs from the released file only in line endings, a "
                    f"byte-order mark or trailing whitespace (an editor or a Windows checkout "
                    f"changed it); the rows are the same, so load it with verify=False "
                    f"(CLI: --no-verify), or restore the original file")
            raise ChecksumError(
                f"{path}: SHA-256 {got} does not match the released file ({expected}). The "
                f"upstream file changed, the download is corrupt or the file was edited; delete "
                f"it to download again, or use it as it is with verify=False (CLI: --no-verify) "
                f"or MMKGDataset")

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.name}, modalities={self.modalities})'

