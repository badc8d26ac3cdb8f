"""``python -m native_pyg ...`` is the ``native-pyg`` command (e.g.
``python -m native_pyg experiment main ...``)."""
from native_pyg.cli import run

run()
