"""Token counting with a real BPE tokenizer that works offline.

tiktoken (OpenAI's tokenizer) with the ``o200k_base`` vocabulary shipped in this package
(``data/o200k_base.tiktoken.gz``, checked against tiktoken's published SHA-256), so nothing
is downloaded at run time. Poe's bots use many tokenizers; o200k is a fair, stable estimate.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from functools import lru_cache
from importlib import resources

import tiktoken

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)


@lru_cache(maxsize=1)
def _encoding() -> tiktoken.Encoding:
    raw = gzip.decompress(resources.files("poe2openai.data").joinpath("o200k_base.tiktoken.gz").read_bytes())
    if hashlib.sha256(raw).hexdigest() != O200K_SHA256:
        raise RuntimeError("the bundled o200k_base vocabulary is damaged")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}
    enc = tiktoken.Encoding(
        name="o200k_base",
        pat_str=O200K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    )
    # tiktoken keeps the Python rank table only for pickling; the Rust core has its own copy.
    # Dropping it saves about 30 MB per process.
    enc._mergeable_ranks = {}
    return enc


def warm_up() -> None:
    """Load the vocabulary now (about 0.3 s) rather than on the first request."""
    _encoding()


def count_tokens(text: str) -> int:
    """Number of o200k tokens in ``text`` (special-token text is counted as plain text)."""
    if not text:
        return 0
    return len(_encoding().encode_ordinary(text))


def count_messages(texts: list[str]) -> int:
    """Prompt tokens of a conversation: its texts plus OpenAI's per-message framing."""
    return sum(4 + count_tokens(t) for t in texts) + 2
