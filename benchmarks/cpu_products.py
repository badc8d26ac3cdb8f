"""The NativE step's CPU matrix products through PyTorch (MKL), oneDNN and numpy.

    python benchmarks/cpu_products.py [--repeats 5]

Each product of the MKG-Y paper-settings step (``native_step.py``: the
4096-d image and 768-d text projections of ~15,000 entities to 500 reals,
the hidden layer, CoMAT's generator), as its forward pass ``X W^T``, the
input gradient ``G W`` and the weight gradient ``G^T X``, timed by
``torch.mm`` (MKL on x86), by ``training.cpu_blas=onednn``'s routine and
by numpy's ``matmul`` (its own BLAS threads), in this process, one after
the other per product, after one untimed call each. Prints one JSON object
with the median milliseconds and each library's time over MKL's
(``training.cpu_blas: auto`` takes oneDNN on AVX-512 CPUs).
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import machine  # noqa: E402

#: (name, rows, in, out) of the step's products
SHAPES = [('image projection', 14999, 4096, 500), ('hidden layer', 14999, 500, 500),
          ('text projection', 14999, 768, 500), ('CoMAT generator', 1024, 1564, 512)]


def median_ms(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def main():
    import torch
    from native_pyg.kernels.cpu_blas import onednn_linear as onednn

    p = argparse.ArgumentParser()
    p.add_argument('--repeats', type=int, default=5)
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    results = []
    for name, m, k, n in SHAPES:
        x, w, grad = (torch.randn(*s, generator=g) for s in ((m, k), (n, k), (m, n)))
        xn, wn, gn = x.numpy(), w.numpy(), grad.numpy()
        products = {  # library -> pass -> call
            'torch': {'forward': lambda: x @ w.t(), 'input_grad': lambda: grad @ w,
                      'weight_grad': lambda: grad.t() @ x},
            'onednn': {'forward': lambda: onednn(x, w), 'input_grad': lambda: onednn(grad, w.t()),
                       'weight_grad': lambda: onednn(grad.t(), x.t())},
            'numpy': {'forward': lambda: xn @ wn.T, 'input_grad': lambda: gn @ wn,
                      'weight_grad': lambda: gn.T @ xn}}
        row = {'product': name, 'shape': [m, k, n]}
        for lib, passes in products.items():
            for which, call in passes.items():
                call()
                row[f'{lib}_{which}_ms'] = median_ms(call, args.repeats)
        for lib in ('onednn', 'numpy'):
            row[f'{lib}_over_torch'] = round(
                sum(row[f'{lib}_{w}_ms'] for w in ('forward', 'input_grad', 'weight_grad'))
                / sum(row[f'torch_{w}_ms'] for w in ('forward', 'input_grad', 'weight_grad')), 2)
        results.append(row)
    print(json.dumps({'measure': 'milliseconds per product (median)', 'machine': machine(),
                      'cpu_capability': torch.backends.cpu.get_cpu_capability(),
                      'results': results}, indent=1))


if __name__ == '__main__':
    main()
