"""``python -m native_pyg.cli ...`` is the ``native-pyg`` command."""
import sys

from native_pyg.cli import main

sys.exit(main())
