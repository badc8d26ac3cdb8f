"""Modality features made by the library itself (text from entity names).

May import: :mod:`native_pyg.kernels`, :mod:`native_pyg.data`."""
from native_pyg.features.text import (DEFAULT_TEXT_MODEL, NAME_STYLES, clean_names,
                                      encode_texts, name_text_features)

__all__ = ['DEFAULT_TEXT_MODEL', 'NAME_STYLES', 'clean_names', 'encode_texts',
           'name_text_features']
