"""The model server: a local, scripted stand-in for a hosted LLM behind an OpenAI-compatible API."""
