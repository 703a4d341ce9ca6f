"""OpenAI's legacy Completions (``/v1/completions``): a prompt (and, for fill-in-the-middle, a
suffix) in, ``text_completion`` objects out; Continue's autocomplete and older tools use it."""
