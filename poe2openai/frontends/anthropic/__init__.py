"""Anthropic's Messages API (``/v1/messages``, ``/v1/messages/count_tokens``) over every Poe bot,
so Claude Code and the ``anthropic`` SDKs work with any bot."""
