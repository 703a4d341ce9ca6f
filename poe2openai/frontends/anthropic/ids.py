"""Message ids and thinking signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# Signatures prove only that this gateway process wrote a thinking block; a fresh secret per
# process is enough, as the gateway never needs to check a signature (thinking blocks sent
# back by clients are accepted and dropped).
_SECRET = secrets.token_bytes(32)


def message_id() -> str:
    """``msg_`` and 24 random characters, as Anthropic writes them."""
    return "msg_" + secrets.token_hex(12)


class Signer:
    """The signature of one thinking block, fed as its text streams (memory stays constant)."""

    __slots__ = ("_mac",)

    def __init__(self) -> None:
        self._mac = hmac.new(_SECRET, digestmod=hashlib.sha256)

    def feed(self, text: str) -> None:
        """Add the block's next text."""
        self._mac.update(text.encode("utf-8", "surrogatepass"))

    def signature(self) -> str:
        """The block's ``signature``: a base64 HMAC-SHA256 of its text under the process's secret."""
        return base64.b64encode(self._mac.digest()).decode()


def signature_of(text: str) -> str:
    """The signature of a whole thinking text (the same as :class:`Signer` gives)."""
    s = Signer()
    s.feed(text)
    return s.signature()
