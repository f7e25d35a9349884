"""The frontend service: dispatches the driver who can reach a customer first."""
