"""Run a learner's program as ``__main__``, so that SIGTERM ends it cleanly.

Python's default answer to SIGTERM is to die on the spot: atexit handlers never
run, so the SDK's BatchSpanProcessor never flushes and the last spans are lost.
Here SIGTERM becomes ``SystemExit``, the interpreter shuts down normally, and the
TracerProvider's own atexit hook exports what is left.

The check harness runs this file by path (``python launcher.py app.py``). It
imports nothing from tracequest, so it works whether or not the lab is installed.
"""

import os
import runpy
import signal
import sys


def _exit(signum, frame):
    sys.exit(0)


def main() -> None:
    script = os.path.abspath(sys.argv[1])
    sys.argv = sys.argv[1:]
    # As if started with `python app.py`: imports resolve beside the script.
    sys.path[0] = os.path.dirname(script)
    signal.signal(signal.SIGTERM, _exit)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
