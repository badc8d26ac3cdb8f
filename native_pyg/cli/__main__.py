"""``python -m native_pyg.cli ...`` is the ``native-pyg`` command."""
from native_pyg.cli import run

run()
