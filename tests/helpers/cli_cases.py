"""Runs many ``native-pyg`` argument lists one after another in this one
process (``python -m tests.helpers.cli_cases CASES.json OUT.json``, cases
``{"argv": [...], "home": DIR}``, ``HOME`` set to ``DIR`` for ``~``): for
each, the exit code, stdout and stderr a ``native-pyg`` process would give
(an exception that escapes ``main`` is printed as its traceback, exit code
1, as Python does). One process instead of one per case: the cases cost
their own work, not 3 s of imports each."""
import contextlib
import io
import json
import os
import sys
import traceback

from native_pyg.cli import main


def run(argv, home=None):
    if home is not None:  # what '~' means for this case
        os.environ['HOME'] = home
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse errors, --version
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - what Python would print
            traceback.print_exc()
            code = 1
    return {'argv': argv, 'code': code, 'stdout': out.getvalue(), 'stderr': err.getvalue()}


if __name__ == '__main__':
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    with open(sys.argv[2], 'w') as f:
        json.dump([run(c['argv'], c.get('home')) for c in cases], f)
