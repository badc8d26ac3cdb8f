"""The run configuration: the ``data``, ``model`` and ``training`` sections,
each key declared with its rule (type, range or choices), YAML loading with
one-line errors naming the file and key, and the defaults of runs saved by
older versions.

May import: :mod:`native_pyg.kernels`, :mod:`native_pyg.data`,
:mod:`native_pyg.nn` (for the names of its choices)."""
from native_pyg.config.run_config import DataConfig, ModelConfig, RunConfig, TrainConfig

__all__ = ['DataConfig', 'ModelConfig', 'TrainConfig', 'RunConfig']
