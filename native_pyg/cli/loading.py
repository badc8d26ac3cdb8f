"""What a ``native-pyg`` command reads before it works: the graph of a run
config, or a trained run restored from its checkpoint; a failure a user
can fix (bad files, checksums, no network, a moved dataset) is one line."""
from __future__ import annotations

from typing import Optional

from native_pyg.cli.errors import CLIError
from native_pyg.data.safe_load import first_line


def load(run):
    """The graph of a run config (:func:`~native_pyg.pipeline.load_data`)."""
    from native_pyg.pipeline import load_data
    try:
        return load_data(run)
    except ValueError as e:
        raise CLIError(str(e)) from None


def restore(path: str, root: Optional[str] = None, device: Optional[str] = None,
            feature_store: Optional[str] = None):
    """The :class:`~native_pyg.pipeline.LoadedRun` of a checkpoint
    (:func:`~native_pyg.pipeline.load_run`)."""
    from native_pyg.pipeline import load_run
    try:
        return load_run(path, root, device, feature_store=feature_store)
    except ValueError as e:
        raise CLIError(first_line(e)) from None
