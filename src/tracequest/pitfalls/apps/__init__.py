"""The pitfall programs: each file is a script, run in a process of its own by ``scenarios``.

Never import them: each one sets up tracing and does its work at import time,
exactly as a learner's small program would. This file makes the folder a
package only so that an installed (non-editable) tracequest ships them.
"""
