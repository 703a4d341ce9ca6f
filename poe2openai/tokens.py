"""Token counting with a real BPE tokenizer that works offline.

``bpe-openai`` ships the ``o200k_base`` vocabulary inside the package, so nothing is
downloaded at run time. Poe's bots use many tokenizers; o200k is a fair, stable estimate.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

import bpe_openai  # type: ignore[import-untyped]


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


@lru_cache(maxsize=1)
def _encoding() -> _Encoding:
    enc: _Encoding = bpe_openai.get_encoding("o200k_base")
    return enc


def warm_up() -> None:
    """Load the vocabulary now (about 70 ms) rather than on the first request."""
    _encoding()


def count_tokens(text: str) -> int:
    """Number of o200k tokens in ``text`` (special-token text is counted as plain text)."""
    if not text:
        return 0
    return len(_encoding().encode_ordinary(text))


def count_messages(texts: list[str]) -> int:
    """Prompt tokens of a conversation: its texts plus OpenAI's per-message framing."""
    return sum(4 + count_tokens(t) for t in texts) + 2
