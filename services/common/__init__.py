"""What the four services share: flags, delays, the worker pool, logs, HTTP calls, the app."""
