"""`python -m tracequest`: the `tracequest` command, for when the script is not on PATH."""

import sys

from tracequest.cli import main

sys.exit(main())
