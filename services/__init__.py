"""The Trace Quest demo app: HotROD's ride dispatch as four small Flask services.

Start each one with ``opentelemetry-instrument python -m services.<name>``,
where <name> is frontend, customer, driver or route.
"""
