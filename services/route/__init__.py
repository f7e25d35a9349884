"""The route service: estimates how long a driver needs to reach a pickup point."""
