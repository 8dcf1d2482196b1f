"""VERP tags: the part of a message's return path (and of its X-Digest-ID header) that names the
edition and the reader, signed, so that a bounce is attributed whatever its body says and a forged
or altered tag is worth nothing.

    bounces+<tag>@<[bounces] domain>        tag: 32 characters of base32 (a-z, 2-7), lowercase

The tag is 20 bytes in base32: the key version (1), the subscriber id (5), the edition's day as days
since 2000-01-01 (2), its revision (1), and the first 11 bytes of an HMAC-SHA256 over those and the
list id, under a key derived from the signing keys for this one purpose. Base32 survives an MTA that
changes the case of a local part, and `bounces+` and the tag stay far under a local part's 64.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from digest.core.config import Bounces
from digest.delivery.editions import edition_key
from subscribers.tokens import Tokens

TAG_LENGTH = 32
PURPOSE = "verp-tag"
EPOCH = date(2000, 1, 1)
_FIELDS = struct.Struct(">BIBHB")  # version; the id as its high 32 bits and low 8; days; revision
_MAC_BYTES = 11
_NOBODY = "0" * TAG_LENGTH  # a test copy's tag: not base32, so it never verifies
_TAG = re.compile(rb"[A-Za-z2-7]{%d}" % TAG_LENGTH)
_HEADER = re.compile(rb"(?im)^(?:x-digest-id|cfbl-feedback-id)[ \t]*:[ \t]*([A-Za-z2-7]{%d})\b" % TAG_LENGTH)


@dataclass(frozen=True)
class Tagged:
    """What a verified tag names."""

    subscriber_id: int
    edition: str  # the edition's key in the ledger
    day: date
    revision: int


class VerpTags:
    """Makes and checks the tags of one newsletter, with the signing keys of its links."""

    def __init__(self, tokens: Tokens, bounces: Bounces) -> None:
        self.list_id = tokens.list_id
        self.bounces = bounces
        self._keys = tokens.derived_keys(PURPOSE)
        self.current = tokens.current
        local = re.escape(bounces.local_part.encode())
        self._address = re.compile(rb"(?i)\b" + local + rb"\+([A-Za-z2-7]{%d})@" % TAG_LENGTH)

    def make(self, subscriber_id: int, day: date, revision: int) -> str:
        fields = _pack(self.current, subscriber_id, day, revision)
        return base64.b32encode(fields + self._mac(self.current, fields)).decode("ascii").lower()

    def return_path(self, tag: str) -> str:
        return f"{self.bounces.local_part}+{tag}@{self.bounces.domain}"

    def verify(self, tag: str | bytes) -> Tagged | None:
        """What the tag names, or None for anything this newsletter's keys did not sign."""
        text = tag.decode("ascii", "replace") if isinstance(tag, bytes) else tag
        if len(text) != TAG_LENGTH or not _TAG.fullmatch(text.encode("ascii", "replace")):
            return None
        raw = base64.b32decode(text.upper())
        fields, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        version, high, low, days, revision = _FIELDS.unpack(fields)
        if version not in self._keys or not hmac.compare_digest(self._mac(version, fields), mac):
            return None
        subscriber_id = high << 8 | low
        day = EPOCH + timedelta(days=days)
        return Tagged(subscriber_id, edition_key(self.list_id, day, revision), day, revision)

    def find(self, raw: bytes) -> Tagged | None:
        """The first tag in `raw` (bounded by the caller) that verifies: in a return path or a
        recipient address (the bounce is addressed to it), or in an X-Digest-ID or CFBL-Feedback-ID
        header of the message that came back (a feedback loop's report keeps those)."""
        for candidate in self._candidates(raw):
            found = self.verify(candidate)
            if found is not None:
                return found
        return None

    def _candidates(self, raw: bytes) -> Iterator[bytes]:
        seen: set[bytes] = set()
        for pattern in (self._address, _HEADER):
            for match in pattern.finditer(raw):
                tag = match.group(1).lower()
                if tag not in seen and len(seen) < 64:  # a bounce full of forged tags costs 64 checks at most
                    seen.add(tag)
                    yield tag

    def _mac(self, version: int, fields: bytes) -> bytes:
        message = fields + b"\x00" + self.list_id.encode()
        return hmac.new(self._keys[version], message, hashlib.sha256).digest()[:_MAC_BYTES]


def _pack(version: int, subscriber_id: int, day: date, revision: int) -> bytes:
    days = (day - EPOCH).days
    if not 1 <= subscriber_id < 2**40 or not 0 <= days < 2**16 or not 1 <= revision < 2**8:
        raise ValueError(f"cannot tag subscriber {subscriber_id}, day {day}, revision {revision}")
    return _FIELDS.pack(version, subscriber_id >> 8, subscriber_id & 0xFF, days, revision)


def nobody() -> str:
    """The tag of a message that belongs to no reader (an editor's test copy): it never verifies."""
    return _NOBODY
