"""Token counts: a real o200k BPE, offline."""

from __future__ import annotations

from poe2openai.pipeline.tokens import count_messages, count_tokens


def test_known_counts() -> None:
    assert count_tokens("") == 0
    assert count_tokens("Hello world") == 2
    assert count_tokens("<|endoftext|>") > 1  # special-token text is plain text, never an error
    assert count_tokens("你好，世界 🌍") >= 4
    assert count_messages(["Hello world"]) == 4 + 2 + 2
