"""The real programs the lab runs: Jaeger, the lab's Collector, Zipkin, Prometheus.

One module per program says how it is made (a Go build, a Maven Central
fetch, a Debian package), its version and the image compose runs, and how it
is started (argv, environment, health probe, start timeout). ``cache`` is the
build/fetch/cache layer they share, and ``registry`` is the one list of
programs that every other list (status, build, the CLI's ``backends``
commands, compose's image pins, the test fixtures) is read from.

May import: ``tracequest.host`` and ``tracequest.errors``; never the lab,
the traces, the backend, the checks or the CLI.
"""
