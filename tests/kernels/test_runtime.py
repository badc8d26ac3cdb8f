"""The runtime context: entered, nested and left, and what it routes."""
import pytest
import torch

from native_pyg.kernels.runtime import Runtime, current_runtime


def test_nested_runtimes_restore_the_outer_one_also_after_an_error():
    assert current_runtime() == Runtime()
    outer, inner = Runtime(compile=True), Runtime(cpu_blas='numpy')
    with outer:
        assert current_runtime() is outer
        with pytest.raises(RuntimeError, match='inside'):
            with inner:
                assert current_runtime() is inner
                raise RuntimeError('inside')
        assert current_runtime() is outer
        with outer:  # one frozen runtime entered twice
            assert current_runtime() is outer
        assert current_runtime() is outer
    assert current_runtime() == Runtime()


def test_products_are_routed_only_inside_a_runtime_that_asks(monkeypatch):
    from native_pyg.kernels import cpu_blas
    monkeypatch.setattr(cpu_blas, 'MIN_MACS', 1)
    routed, real = [], cpu_blas.threaded_matmul
    monkeypatch.setattr(cpu_blas, 'threaded_matmul', lambda *a: routed.append(1) or real(*a))
    a, b = torch.randn(4, 3), torch.randn(3, 5)
    with Runtime():
        plain = a @ b
    assert not routed
    with Runtime(cpu_blas='numpy'):
        numpy = a @ b
    assert routed and torch.allclose(numpy, plain)
    routed.clear()
    a @ b  # left: PyTorch's own products again
    assert not routed
