"""The assistant service: a help-desk agent that answers "why is my driver late?" with an LLM and tools."""
