"""The driver service: finds drivers near a place in a simulated, flaky Redis."""
