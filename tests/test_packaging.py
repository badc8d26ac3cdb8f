"""pyproject.toml and environment.yml name the same packages."""
import re
import subprocess
import sys
import tomllib

import yaml

from tests.conftest import REPO

# conda package name -> pip distribution name
CONDA_TO_PIP = {'pytorch': 'torch', 'pyg': 'torch_geometric', 'pytorch-scatter': 'torch_scatter',
                'pytorch-sparse': 'torch_sparse'}


def _name(spec: str) -> str:
    return re.split(r'[<>=!~ \[]', spec.strip(), maxsplit=1)[0].lower().replace('-', '_')


def test_environment_matches_pyproject():
    project = tomllib.loads((REPO / 'pyproject.toml').read_text())['project']
    pip_names = {_name(d) for d in project['dependencies']}
    for extra in ('accel', 'test'):
        pip_names |= {_name(d) for d in project['optional-dependencies'][extra]}
    env = yaml.safe_load((REPO / 'environment.yml').read_text())
    conda = [d for d in env['dependencies'] if isinstance(d, str)]
    conda_names = {_name(CONDA_TO_PIP.get(_name(d).replace('_', '-'), _name(d)))
                   for d in conda} - {'python', 'pip'}
    assert conda_names == pip_names
    assert any(isinstance(d, dict) and '-e .' in d.get('pip', []) for d in env['dependencies'])


def test_console_entry_point_and_bad_arguments():
    # both processes at once: each is mostly start-up
    procs = [subprocess.Popen([sys.executable, '-m', 'native_pyg.cli', 'stats', *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in (['--bogus'], ['--dataset', 'FB15K', '--root', '/nonexistent'])]
    (_, bogus), (_, unknown) = (p.communicate() for p in procs)
    assert procs[0].returncode == 2
    assert bogus.strip().count('\n') == 0 and 'unrecognized arguments: --bogus' in bogus
    assert procs[1].returncode == 2 and "unknown dataset 'FB15K'" in unknown
