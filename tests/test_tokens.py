"""Token counts: a real o200k BPE, offline, exact for usual sizes and at bounded cost beyond."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poe2openai.pipeline.tokens import (
    BOUNDARY,
    EXACT_LIMIT,
    LAST_BOUNDARY,
    SAMPLES,
    SNAP,
    WINDOW,
    _encoding,
    count_messages,
    count_tokens,
)

from .tokenizer_spy import Spy


def test_known_counts() -> None:
    assert count_tokens("") == 0
    assert count_tokens("Hello world") == 2
    assert count_tokens("<|endoftext|>") > 1  # special-token text is plain text, never an error
    assert count_tokens("你好，世界 🌍") >= 4
    assert count_messages(["Hello world"]) == 4 + 2 + 2


# --- bounded cost ---------------------------------------------------------------------------

ENC = _encoding()


def exact(text: str) -> int:
    return len(ENC.encode_ordinary(text))


def repo_text() -> str:
    """Real prose and code, all different: this project's README and sources."""
    root = Path(__file__).parent.parent
    files = [root / "README.md", *sorted((root / "poe2openai").glob("*.py")), *sorted(root.glob("tests/*.py"))]
    return "\n".join(f.read_text() for f in files)


def test_exact_up_to_the_limit() -> None:
    text = (repo_text() * 2)[:EXACT_LIMIT]
    assert count_tokens(text) == exact(text)
    half = EXACT_LIMIT // 2
    parts = [text[:half], text[half:]]
    assert count_messages(parts) == 4 * 2 + 2 + exact(parts[0]) + exact(parts[1])


def test_long_natural_text_is_estimated_closely() -> None:
    text = repo_text()
    assert len(text) > EXACT_LIMIT
    want = exact(text)
    assert abs(count_tokens(text) - want) < 0.03 * want
    files = text.split("\n")
    want_messages = 4 * len(files) + 2 + sum(exact(t) for t in files if t)
    assert abs(count_messages(files) - want_messages) < 0.03 * want_messages
    prose = (Path(__file__).parent.parent / "README.md").read_text()
    many = prose * (4 * EXACT_LIMIT // len(prose))
    assert abs(count_tokens(many) - exact(prose) * (len(many) // len(prose))) < 0.03 * exact(many)


SAMPLE_MOST = SAMPLES * (WINDOW + SNAP)


@pytest.mark.parametrize("size", [EXACT_LIMIT + 1, 4 << 20, 30 << 20])
def test_a_long_text_tokenizes_a_bounded_sample(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    spy = Spy.install(monkeypatch)
    text = repo_text()
    text = (text * (size // len(text) + 1))[:size]
    n = count_tokens(text)
    assert spy.chars <= SAMPLE_MOST
    assert len(spy.sizes) <= SAMPLES
    assert 0.2 * size < n < 0.4 * size  # about 3.4 characters a token for this text


def test_many_messages_tokenize_a_bounded_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy.install(monkeypatch)
    texts = [f"message {i}: " + "the quick brown fox jumps over the lazy dog " * (i % 50) for i in range(20000)]
    assert sum(map(len, texts)) > 20 * EXACT_LIMIT
    n = count_messages(texts)
    assert spy.chars <= SAMPLE_MOST
    want = 4 * len(texts) + 2 + sum(exact(t) for t in texts)
    assert abs(n - want) < 0.03 * want


def test_a_megabyte_of_white_space_is_counted() -> None:
    # tiktoken itself panics (a BaseException) on a run of about a million spaces
    text = "Indented:\n" + " " * (2 << 20) + "\tdone"
    assert 0 < count_tokens(text) < len(text) // 50
    assert count_messages([text, "hi"]) > count_tokens(text)


ODD = [
    "\u00a0",
    "\u3000",
    "\u2028",
    "\u0301",
    "😀",
    "’",
    "…",
    "—",
    "\x1c",
    "ß",
    "Ǆ",
    "ǅ",
    "ʰ",
    "ー",
    "〆",
    "²",
    "½",
    "١",
]
alphabet = st.sampled_from([*"aZé文字，。、！？「」.,;:!?'\"()[]{}<>/\\-_*#@$%^&|~`+=0123456789 \t\n\r", *ODD])


@settings(max_examples=400, deadline=None)
@given(st.lists(alphabet, min_size=2, max_size=40).map("".join))
def test_token_boundaries_split_the_count_exactly(text: str) -> None:
    whole = exact(text)
    for i in range(1, len(text)):
        if BOUNDARY.match(text, i):
            assert exact(text[:i]) + exact(text[i:]) == whole, (text, i)
            last = LAST_BOUNDARY.match(text, 1, i + 1)
            assert last is not None and last.end() - 1 == i


def test_boundaries_are_frequent_in_prose_code_and_cjk() -> None:
    for text in ["The quick brown fox.", "def f(x):\n    return x.y[0]", '{"a":1,"b":[2,3]}', "你好，世界。再见！"]:
        assert BOUNDARY.search(text) is not None, text
