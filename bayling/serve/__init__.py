"""`bayling serve`: an OpenAI-compatible HTTP API and a web page over one engine."""
