"""`python -m tracequest.cli`: the `tracequest` command (the tests and older docs run it so)."""

import sys

from tracequest.cli import main

sys.exit(main())
