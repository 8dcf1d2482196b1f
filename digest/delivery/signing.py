"""DKIM signatures (dkimpy) over each personalised message, List-Unsubscribe headers included."""
from __future__ import annotations

from digest.core.config import Dkim

# Headers a DKIM signature covers: Gmail and Yahoo want both List-Unsubscribe headers among them, and
# RFC 9477 wants CFBL-Address and CFBL-Feedback-ID covered (the reader's tag, signed twice over).
DKIM_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
                b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to",
                b"feedback-id", b"x-digest-id", b"cfbl-address", b"cfbl-feedback-id"]


class Signer:
    def __init__(self, config: Dkim) -> None:
        self.config = config

    def signature(self, message: bytes) -> bytes:
        """The DKIM-Signature header line(s) for ``message`` (CRLF line ends), to put in front of it."""
        import dkim  # noqa: PLC0415 — dkimpy (and its DNS plug) only where a key signs: 60 ms of a worker's start

        dk = self.config
        return dkim.sign(message, dk.selector.encode(), dk.domain.encode(), dk.key, include_headers=DKIM_HEADERS,
                         linesep=b"\r\n")
