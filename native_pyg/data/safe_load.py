"""Loading ``.pt`` files that may come from anywhere: only tensors and plain
containers are ever unpickled (``torch.load(weights_only=True)``), and a
refused or broken file is one line naming it."""
from __future__ import annotations

import os
from typing import Any

import torch


def refusal(path: str, e: BaseException, what: str) -> str:
    """One line for a ``.pt`` file that could not be loaded safely (``what``
    with its article: ``'a checkpoint'``). It never
    repeats torch's advice to retry with ``weights_only=False``: that would
    run whatever code the file holds."""
    if isinstance(e, FileNotFoundError) or not os.path.exists(path):
        return f"{path}: no such file"
    text = str(e)
    if 'Unsupported global' in text:  # torch refused a class: the file is not only tensors
        return (f"{path}: not {what} written by native_pyg (it holds Python objects other "
                f"than tensors, which are never loaded)")
    if 'WeightsUnpickler error:' in text:  # the reason, without torch's advice around it
        reason = first_line(Exception(text.split('WeightsUnpickler error:', 1)[1]))
        return f"{path}: not {what} that can be read (damaged or not a torch file: {reason})"
    return f"{path}: not {what} that can be read ({type(e).__name__}: {first_line(e)})"


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message (libraries append
    advice on further lines, e.g. torch's on ``weights_only``)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else ''


def load_pt(path: str, what: str = 'a tensor file', **kwargs) -> Any:
    """``torch.load(path, weights_only=True, map_location='cpu', **kwargs)``.

    Raises:
        ValueError: One line (:func:`refusal`) for a missing, unsafe or
            unreadable file.
    """
    kwargs.setdefault('map_location', 'cpu')
    try:
        return torch.load(path, weights_only=True, **kwargs)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds here
        raise ValueError(refusal(path, e, what)) from None
