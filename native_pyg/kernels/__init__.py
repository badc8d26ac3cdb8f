"""Numeric kernels and process-wide numeric settings, the bottom of the house:
CPU autocast detection, the weighted bag, activations, the complex-distance
kernels of RotatE, CPU matrix products through BLAS or oneDNN
(``training.cpu_blas``), step precision (``training.precision``) and the C
allocator's handling of large blocks.

May import: torch only (nothing of native_pyg above it). Everything else may
import it."""
