"""The customer service: looks customers up in a slow, single-connection SQL database."""
