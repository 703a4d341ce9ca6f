"""Token counting with a real BPE tokenizer that works offline.

tiktoken (OpenAI's tokenizer) with the ``o200k_base`` vocabulary shipped in this package
(``data/o200k_base.tiktoken.gz``, checked against tiktoken's published SHA-256), so nothing
is downloaded at run time. Poe's bots use many tokenizers; o200k is a fair, stable estimate.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from collections import OrderedDict
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


# An attachment's share of a prompt: a fixed estimate, as files go to Poe as links and their
# real cost depends on the bot (about what a one-megapixel image costs on Claude; a PDF or
# other file counts the same). Usage and token-counting endpoints both use it, so they agree.
ATTACHMENT_TOKENS = 1600

# Agents send the same long system prompt and tool list with every call (and Claude Code asks
# for counts of it dozens of times): counts of long prompt texts are kept by digest, so a
# repeat costs one hash instead of a tokenization.
CACHED_FROM = 2048  # characters; shorter texts are counted afresh (cheaper than hashing)
CACHE_ENTRIES = 1024
_counts: OrderedDict[bytes, int] = OrderedDict()
_counts_lock = threading.Lock()  # counts also run in worker threads


def _count_cached(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    with _counts_lock:
        found = _counts.get(digest)
        if found is not None:
            _counts.move_to_end(digest)
            return found
    n = count_tokens(text)
    with _counts_lock:
        _counts[digest] = n
        if len(_counts) > CACHE_ENTRIES:
            _counts.popitem(last=False)
    return n


def count_messages(texts: list[str]) -> int:
    """Prompt tokens of a conversation: its texts plus OpenAI's per-message framing."""
    return sum(4 + (_count_cached(t) if len(t) >= CACHED_FROM else count_tokens(t)) for t in texts) + 2
