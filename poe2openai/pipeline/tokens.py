"""Token counting with a real BPE tokenizer that works offline, at bounded cost.

tiktoken (OpenAI's tokenizer) with the ``o200k_base`` vocabulary shipped in this package
(``data/o200k_base.tiktoken.gz``, checked against tiktoken's published SHA-256), so nothing
is downloaded at run time. Poe's bots use many tokenizers; o200k is a fair, stable estimate.

Cost: tiktoken takes about 0.1 s per MiB of prose here, up to 1 s per MiB for text with long
runs of one character class (a MiB of ``a``), and it fails outright (a Rust panic, which is
not even an ``Exception``) on a run of about a million white-space characters. So a text,
or the texts of one conversation together, of up to :data:`EXACT_LIMIT` characters (at most
about 0.25 s in the worst case measured, 30 ms for prose) is counted exactly; a longer one is
estimated from :data:`SAMPLES` evenly spaced windows of :data:`WINDOW` characters (the first
and the last included), scaled by characters: within about 1 % of the exact count for prose
and code, with at most ``SAMPLES * (WINDOW + SNAP)`` characters tokenized whatever the size.
"""

from __future__ import annotations

import base64
import bisect
import gzip
import hashlib
import re
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

EXACT_LIMIT = 256 * 1024
"""Texts of up to this many characters in all are counted exactly."""
SAMPLES = 128
"""Windows counted to estimate a longer text."""
WINDOW = 1024
"""Characters per window."""
SNAP = 128
"""How far a window's edge may move to reach a token boundary."""

# A token boundary: a position where o200k's pre-tokenizer always starts a new piece, whatever
# comes before or after, so the tokens on either side are those of the whole text:
# - a space (U+0020) after a non-space: only white-space pieces hold white space other than
#   at their start, and no word, number or punctuation piece ends with a space;
# - a character other than white space and "/" after CR or LF: only "/" can follow a line
#   break inside a (punctuation) piece;
# - punctuation other than "'" after a letter or digit: a word piece ends at anything but a
#   letter, a mark or its "'s" suffix, a number piece at anything but a digit.
# The classes are chosen to be safe whatever Unicode version either side uses: Python's \s is
# a superset of the tokenizer's, and the punctuation is listed character by character.
_PUNCT = "!-&(-/:-@\\[-`{-~\u2010-\u2027\u3001-\u3003\u3008-\u3011\uff01-\uff06\uff08-\uff0f\uff1a-\uff20"
_BOUNDARY = rf"(?<=\S) |(?<=[\r\n])[^\s/]|(?<=[^\W_])[{_PUNCT}]"
BOUNDARY = re.compile(_BOUNDARY)
"""Search: the first token boundary (``m.start()``)."""
LAST_BOUNDARY = re.compile(rf"(?s:.*)(?:{_BOUNDARY})")
"""Match: the last token boundary in ``[pos, endpos - 1]`` (``m.end() - 1``)."""


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
    """Number of o200k tokens in ``text`` (special-token text is counted as plain text).

    Exact up to :data:`EXACT_LIMIT` characters, an estimate from samples beyond (see the module).
    """
    if not text:
        return 0
    if len(text) <= EXACT_LIMIT:
        return len(_encoding().encode_ordinary(text))
    return _estimate([text], len(text))


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
    """The exact count of ``text`` (at most :data:`EXACT_LIMIT` characters), cached."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    with _counts_lock:
        found = _counts.get(digest)
        if found is not None:
            _counts.move_to_end(digest)
            return found
    n = len(_encoding().encode_ordinary(text))
    with _counts_lock:
        _counts[digest] = n
        if len(_counts) > CACHE_ENTRIES:
            _counts.popitem(last=False)
    return n


def count_messages(texts: list[str]) -> int:
    """Prompt tokens of a conversation: its texts plus OpenAI's per-message framing.

    Exact while the texts have :data:`EXACT_LIMIT` characters in all, an estimate beyond.
    """
    framing = 4 * len(texts) + 2
    total = sum(map(len, texts))
    if total <= EXACT_LIMIT:
        encode = _encoding().encode_ordinary
        return framing + sum(_count_cached(t) if len(t) >= CACHED_FROM else len(encode(t)) for t in texts if t)
    return framing + _estimate(texts, total)


def _estimate(texts: list[str], total: int) -> int:
    """Tokens of ``texts`` (``total`` characters, more than a sample) from evenly spaced windows.

    The texts are laid end to end; each window is counted text by text (as the exact count
    would), and starts and ends on a token boundary when one is near (:data:`BOUNDARY`), so
    cutting the samples out does not add tokens of its own.
    """
    encode = _encoding().encode_ordinary
    starts = []
    pos = 0
    for t in texts:
        starts.append(pos)
        pos += len(t)
    tokens = chars = 0
    step = (total - WINDOW) / (SAMPLES - 1)
    for k in range(SAMPLES):
        offset = int(k * step)
        i = bisect.bisect_right(starts, offset) - 1
        at = offset - starts[i]
        want = WINDOW
        while want > 0 and i < len(texts):
            t = texts[i]
            if at:
                at = _snap(t, at)
            end = at + want
            if end < len(t):
                end = _snap(t, end)
            piece = t[at:end]
            if piece:
                tokens += len(encode(piece))
                chars += len(piece)
                want -= len(piece)
            i += 1
            at = 0
    return round(tokens * total / chars) if chars else 0


def _snap(text: str, pos: int) -> int:
    """The first token boundary at or after ``pos`` within :data:`SNAP` characters, else ``pos``."""
    m = BOUNDARY.search(text, pos, pos + SNAP)
    return m.start() if m else pos
