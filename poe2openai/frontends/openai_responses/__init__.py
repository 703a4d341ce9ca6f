"""OpenAI Responses (``/v1/responses``): Codex CLI, the OpenAI Agents SDK, and other clients of it."""
