"""native_pyg: multi-modal knowledge graph completion in the wild, for PyTorch Geometric."""
__version__ = '0.1.0'
