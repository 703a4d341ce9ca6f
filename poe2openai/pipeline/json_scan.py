"""Scan JSON text as it streams: where a value ends, what may be passed on before it does.

Used by the tool-call extractor (arguments streamed as fragments) and by the structured
output stage (the answer's JSON value streamed without the prose around it).
"""

from __future__ import annotations

import re

from poe2openai.errors import MAX_NESTING

_STR_STOP = re.compile(r'["\\]')
_STRUCT = re.compile(r'["{}\[\],<]')
_NON_SPACE = re.compile(r"\S")


class JsonScanner:
    """Incremental scan of one JSON object's or array's text (its opening bracket already
    seen): what may be passed on now, and where the value ends.

    Tracks strings, escapes and nesting only (the cost is a regex jump per string, not per
    character). A comma outside strings is held until the next token shows it is not a trailing
    one (``{"a": 1,}`` streams as ``{"a": 1}``). A ``<`` outside strings is never JSON: the
    object ends there (the bot broke off into markup), as it does at a nesting deeper than
    :data:`MAX_NESTING`; the call then stands with the arguments sent so far.
    """

    __slots__ = ("_depth", "_escape", "_pending", "_string", "done")

    def __init__(self) -> None:
        self._depth = 1  # the opening brace is already seen
        self._string = False
        self._escape = False
        self._pending = ""  # a held comma and the whitespace after it
        self.done = False

    def feed(self, t: str) -> tuple[str, str | None]:
        """``(fragment to send, rest after the object)``; ``rest`` is ``None`` while it goes on."""
        pieces: list[str] = []
        i, start, n = 0, 0, len(t)
        while i < n:
            if self._string:
                if self._escape:
                    self._escape = False
                    i += 1
                    continue
                m = _STR_STOP.search(t, i)
                if m is None:
                    break
                i = m.start()
                if t[i] == "\\":
                    self._escape = True
                else:
                    self._string = False
                i += 1
                continue
            if self._pending:
                m = _NON_SPACE.search(t, i)
                if m is None:
                    self._pending += t[i:]
                    return "".join(pieces), None
                j = m.start()
                if t[j] not in "}]":
                    pieces.append(self._pending + t[i:j])
                self._pending = ""
                i = start = j
            m = _STRUCT.search(t, i)
            if m is None:
                break
            i = m.start()
            c = t[i]
            if c == '"':
                self._string = True
            elif c in "{[":
                self._depth += 1
                if self._depth > MAX_NESTING:  # nothing downstream could write it back
                    pieces.append(t[start:i])
                    self.done = True
                    return "".join(pieces), t[i:]
            elif c in "}]":
                self._depth -= 1
                if self._depth == 0:
                    pieces.append(t[start : i + 1])
                    self.done = True
                    return "".join(pieces), t[i + 1 :]
            elif c == ",":
                pieces.append(t[start:i])
                self._pending = ","
                start = i + 1
            else:  # "<": not JSON any more
                pieces.append(t[start:i])
                self.done = True
                return "".join(pieces), t[i:]
            i += 1
        if not self._pending:
            pieces.append(t[start:])
        return "".join(pieces), None
