"""The run configuration: the ``data``, ``model`` and ``training`` sections,
each key declared with its rule (type, range or choices) beside it
(:mod:`~native_pyg.config.run_config`), the rule types and the checks that
read them (:mod:`~native_pyg.config.rules`), YAML reading with one-line errors
naming the file and line (:mod:`~native_pyg.config.yaml_reader`), and the
defaults of runs saved by older versions (:mod:`~native_pyg.config.legacy`).

May import: :mod:`native_pyg.kernels`, :mod:`native_pyg.data`,
:mod:`native_pyg.nn` (for the names of its choices), :mod:`native_pyg.datasets`
(whether a dataset name is a path)."""
from native_pyg.config.legacy import LEGACY_DEFAULTS, with_legacy_defaults
from native_pyg.config.run_config import DataConfig, ModelConfig, RunConfig, TrainConfig

__all__ = ['DataConfig', 'ModelConfig', 'TrainConfig', 'RunConfig', 'LEGACY_DEFAULTS',
           'with_legacy_defaults']
