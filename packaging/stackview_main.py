"""Entry point of the frozen app (packaging/stackview.spec): the ``stackview`` command."""

import multiprocessing
import sys

from stackview.cli import main

if __name__ == "__main__":
    # workers started by dask's 'processes' scheduler or scikit-learn re-run this executable
    multiprocessing.freeze_support()
    sys.exit(main())
