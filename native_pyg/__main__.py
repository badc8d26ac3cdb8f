"""``python -m native_pyg ...`` is the ``native-pyg`` command (e.g.
``python -m native_pyg experiment main ...``)."""
import sys

from native_pyg.cli import main

sys.exit(main())
