"""A sans-IO server-sent-events parser: bytes in, events out.

Follows the WHATWG rules: lines end in CRLF, LF or CR (also when a CRLF is split across
two reads); ``data:`` lines of one event join with ``\\n``; one space after the colon is
stripped; lines starting with ``:`` are comments; ``id:`` and ``retry:`` are ignored; a
blank line ends the event. Lines are handled as bytes, so a UTF-8 sequence split across
reads is never decoded in halves, and a line of any length is fine (no readline limit).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event: its name (``message`` when absent) and raw data bytes."""

    event: str
    data: bytes


class SSEParser:
    """Incremental parser. Call :meth:`feed` with each read; it returns complete events."""

    __slots__ = ("_buf", "_data", "_event", "_scan", "_skip_lf")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf already known to hold no line end
        self._skip_lf = False  # the previous read ended in CR: a leading LF belongs to it
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume one read and return the events it completes."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf
        buf += chunk
        # Events end with a blank line: take every complete block at once.
        end = buf.rfind(b"\n\n", max(0, self._scan - 1))
        if end < 0:
            self._scan = len(buf)
            return []
        blocks = bytes(buf[:end]).split(b"\n\n")
        del buf[: end + 2]
        self._scan = len(buf)
        out: list[SSEEvent] = []
        for block in blocks:
            # the usual shape, "event: NAME\ndata: JSON", without the general line loop
            if block[:7] == b"event: ":
                nl = block.find(b"\n")
                if nl > 0 and block[nl + 1 : nl + 7] == b"data: " and block.find(b"\n", nl + 1) < 0:
                    out.append(SSEEvent(block[7:nl].decode("utf-8", "replace"), block[nl + 7 :]))
                    continue
            if block:
                out += self._lines([*block.split(b"\n"), b""])
        return out

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data or self._event is not None:
                    out.append(SSEEvent(self._event or "message", b"\n".join(self._data)))
                    self._event = None
                    self._data = []
                continue
            if line[0] == 58:  # ":" comment / keep-alive
                continue
            field, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                self._data.append(value)
            elif field == b"event":
                self._event = value.decode("utf-8", "replace")
        return out

    def close(self) -> list[SSEEvent]:
        """End of stream: an unterminated final event is dispatched, as browsers do not."""
        # The WHATWG spec drops an event that lacks its blank line; a cut Poe stream often ends
        # that way, and its data (a ``done`` or ``error``) is still worth reading.
        tail = self._lines([*bytes(self._buf).split(b"\n"), b""])
        self._buf.clear()
        self._scan = 0
        return tail
