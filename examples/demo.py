"""`make demo`: the data report of the embedded synthetic default."""
import os

from native_pyg.data import report
from native_pyg.datasets import SyntheticMMKG

if __name__ == '__main__':
    data = SyntheticMMKG(seed=0)[0]
    rep = report(data)
    os.makedirs('outputs', exist_ok=True)
    rep.plot_coverage('outputs/demo_coverage.png')
    print('modality coverage plot: outputs/demo_coverage.png')
