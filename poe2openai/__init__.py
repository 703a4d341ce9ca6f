"""poe2openai: every Poe bot behind the OpenAI Chat Completions API."""

__version__ = "1.0.0"
