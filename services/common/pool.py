"""A fixed-size worker pool that keeps tasks in the caller's trace.

OpenTelemetry keeps the current span in a context variable, and a new thread
starts with an empty context: a span started in a worker would begin a new
trace. The pool captures the submitter's OpenTelemetry context and attaches
it in the worker for the duration of the task, so spans made there become
children of the span that was current when the task was submitted.

The pool is shared by every request of a process, like a real one: when more
tasks arrive than there are workers, they wait their turn, and the trace shows
the wait as a staircase.
"""

from concurrent.futures import ThreadPoolExecutor

from opentelemetry import context


def _run_in_context(parent, fn, args, kwargs):
    token = context.attach(parent)
    try:
        return fn(*args, **kwargs)
    finally:
        context.detach(token)


class WorkerPool:
    """Run callables on `size` threads, each inside its submitter's context."""

    def __init__(self, size, name="worker"):
        self.size = size
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    def submit(self, fn, *args, **kwargs):
        """Queue one call and return its Future; the context is captured now, not when it runs."""
        return self._executor.submit(_run_in_context, context.get_current(), fn, args, kwargs)

    def map(self, fn, items):
        """Call `fn` on every item through the pool and return the results in order."""
        futures = [self.submit(fn, item) for item in items]
        return [future.result() for future in futures]

    def shutdown(self):
        self._executor.shutdown(wait=True)
