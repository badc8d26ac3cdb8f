"""native_pyg: multi-modal knowledge graph completion in the wild, for PyTorch Geometric."""
__version__ = '0.1.0'


def __getattr__(name: str):
    # native_pyg.tune(...) / .predict(...) without importing torch and Optuna with the package
    if name == 'tune':
        from native_pyg.tuning import tune
        return tune
    if name in ('predict', 'modality_weights'):
        from native_pyg import prediction
        return getattr(prediction, name)
    raise AttributeError(f"module 'native_pyg' has no attribute {name!r}")
