"""Other spellings of a model name that may name the same Poe bot.

Clients of other vendors' APIs send their vendor's spelling: Claude Code asks for
``claude-sonnet-4-5-20250929`` or ``claude-haiku-4-5`` where Poe writes ``claude-sonnet-4.5``
and ``claude-haiku-4.5``; OpenAI clients send ``gpt-4o-2024-08-06`` for ``gpt-4o``. The
gateway tries the name as sent first, then these spellings, and takes the first one that
names a model it knows (a public name from models.yaml, Poe's list, a custom model).
"""

from __future__ import annotations

import re
from functools import lru_cache

_TAG = re.compile(r"\[[^\]]*\]$")  # a client's own tag, e.g. Claude Code's "[1m]" (1M context)
_DATE = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|latest)$", re.IGNORECASE)
_HYPHEN_VERSION = re.compile(r"(?<![\d.])(\d{1,2})-(\d{1,2})(?=-|$)")  # "4-5" in "claude-sonnet-4-5"


def spellings(name: str) -> list[str]:
    """``name`` itself, then the spellings worth trying after it, without repeats:
    without a trailing tag and date (``-20250929``, ``-2024-08-06``, ``-latest``), then with
    hyphenated versions written with a dot (``claude-3-5-sonnet`` → ``claude-3.5-sonnet``)."""
    if len(name) <= _CACHED_LENGTH:  # clients repeat their model names: remember the usual ones
        return list(_remembered(name))
    return list(_spellings(name))


def _spellings(name: str) -> tuple[str, ...]:
    out = [name]
    base = _DATE.sub("", _TAG.sub("", name).strip())
    for candidate in (base, _HYPHEN_VERSION.sub(r"\1.\2", base)):
        if candidate and candidate.lower() not in (o.lower() for o in out):
            out.append(candidate)
    return tuple(out)


_CACHED_LENGTH = 100
_remembered = lru_cache(maxsize=512)(_spellings)
