"""`python -m tracequest.backend`: the embedded backend as a program of its own."""

import sys

from tracequest.backend.server import main

sys.exit(main())
