"""Traces as data: the one trace model and everything that reads or draws it.

Holds the model (spans, traces, analyses), the OTLP codec, time formats, the
query client for Jaeger's API v3, service dependencies, and the terminal and
HTML waterfalls. Everything else in the lab reads traces through this package.

May import: ``tracequest.host`` and ``tracequest.errors``; never the lab, the
backend, the programs, the checks or the CLI.
"""
