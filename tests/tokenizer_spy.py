"""A look at what reaches the tokenizer: the real o200k encoding, with the text sizes recorded."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from poe2openai.pipeline import tokens


class Spy:
    """Delegates to the real encoding and records the length of every text it tokenizes."""

    def __init__(self) -> None:
        self.real = tokens._encoding()
        self.sizes: list[int] = []

    @classmethod
    def install(cls, monkeypatch: pytest.MonkeyPatch) -> Spy:
        """Every tokenization after this goes through a new spy (create meters after it)."""
        spy = cls()
        monkeypatch.setattr(tokens, "_encoding", lambda: spy)
        return spy

    def encode_ordinary(self, text: str) -> list[int]:
        self.sizes.append(len(text))
        return self.real.encode_ordinary(text)

    def decode_bytes(self, toks: Sequence[int]) -> bytes:
        return self.real.decode_bytes(toks)

    @property
    def chars(self) -> int:
        """Characters tokenized in all."""
        return sum(self.sizes)
