"""torchvision importable beside a CPU-only torch, for the image encoders
and for the libraries that import it themselves when it is installed
(transformers under sentence-transformers, open_clip).

A CUDA build of torchvision (PyPI's) beside a CPU-only torch cannot load its
C++ ops, yet at import it registers fake kernels for ``torchvision::nms``
and ``torchvision::qnms`` and fails on their absence, which also breaks
every library that imports it. Classification models and transforms never
call those ops, so :func:`import_torchvision` declares the two schemas
(without kernels) and imports again.
"""
from __future__ import annotations

import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Optional

import torch

#: the detection ops declared where torchvision's own could not load
DETECTION_OPS = ('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
                 'qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
# the declarations live as long as their Library object
_declared: Optional[torch.library.Library] = None


def _declare_detection_ops() -> None:
    global _declared
    for schema in DETECTION_OPS:
        if hasattr(torch.ops.torchvision, schema.split('(')[0]):
            continue
        if _declared is None:
            try:
                _declared = torch.library.Library('torchvision', 'DEF')
            except RuntimeError:  # the namespace exists already: add to it
                _declared = torch.library.Library('torchvision', 'FRAGMENT')
        _declared.define(schema)


def _import() -> ModuleType:
    with warnings.catch_warnings():  # its own torch.jit.script deprecations, not the user's
        warnings.simplefilter('ignore', DeprecationWarning)
        import torchvision
    return torchvision


def import_torchvision() -> ModuleType:
    """The :mod:`torchvision` module, also where its C++ ops cannot load.

    Raises:
        ImportError: torchvision is not installed.
    """
    try:
        return _import()
    except RuntimeError as error:
        if 'torchvision::' not in str(error):
            raise
    for module in [m for m in sys.modules if m == 'torchvision' or m.startswith('torchvision.')]:
        del sys.modules[module]
    _declare_detection_ops()
    return _import()


def torchvision_if_installed() -> Optional[ModuleType]:
    """:func:`import_torchvision` where torchvision is installed, else
    :obj:`None`: called before importing a library that imports it."""
    if importlib.util.find_spec('torchvision') is None:
        return None
    try:
        return import_torchvision()
    except ImportError:
        return None
