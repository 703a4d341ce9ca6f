"""OpenAI Chat Completions (``/v1/chat/completions``) and the model list (``/v1/models``)."""
