"""Mail piped in from strangers (the unsubscribe mailto; bounces later), read at bounded cost.

Anyone can write to the address in every List-Unsubscribe header, so nothing here trusts the size or
the shape of what arrives. The standard library's modern header parser (``email.policy.default``)
takes memory in the square of a header's length: 21.7 GB for a 2.8 MB Subject of encoded words. So
only a bounded head of the message is kept, only the header block of that head is looked at, a field
is unfolded by a linear scan and cut to FIELD_MAX before its encoded words are decoded, and the body
is never parsed (thousands of nested multiparts cost nothing).
"""
from __future__ import annotations

from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header
from email.utils import parseaddr
from typing import BinaryIO

MESSAGE_MAX = 256 * 1024  # bytes kept: a mail app's unsubscribe message is a few hundred
DRAIN_MAX = 32 * 1024 * 1024  # bytes read and dropped past that (Postfix's default size limit is 10 MB)
HEADER_MAX = 100 * 1024  # the header block looked at: Postfix's default header_size_limit
FIELD_MAX = 4 * 1024  # a field's unfolded value, before decoding: a token is 44 characters
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Piped:
    """What came in on a pipe: the head kept, how many bytes were read in all, and whether the
    writer's end was reached (False: it went on past DRAIN_MAX and was left unread)."""

    head: bytes
    size: int
    drained: bool


@dataclass(frozen=True)
class Incoming:
    """The few fields we act on, decoded; empty when missing. Untrusted text: escape it to show it."""

    subject: str
    sender: str  # the From address (addr-spec); it proves nothing, anyone can write anyone's


def read_piped(stream: BinaryIO, keep: int = MESSAGE_MAX, drain: int = DRAIN_MAX) -> Piped:
    """The first ``keep`` bytes of ``stream``; up to ``drain`` more are read and dropped, so that the
    MTA writing to us does not fail on a broken pipe for a merely large message."""
    chunks: list[bytes] = []
    kept = 0
    while kept < keep:
        chunk = stream.read(min(_CHUNK, keep - kept))
        if not chunk:
            return Piped(b"".join(chunks), kept, True)
        chunks.append(chunk)
        kept += len(chunk)
    dropped = 0
    while dropped < drain:
        chunk = stream.read(min(_CHUNK, drain - dropped))
        if not chunk:
            return Piped(b"".join(chunks), kept + dropped, True)
        dropped += len(chunk)
    return Piped(b"".join(chunks), kept + dropped, not stream.read(1))


def read_headers(raw: bytes) -> Incoming:
    """Subject and From of a message's raw bytes, at a cost linear in at most HEADER_MAX bytes."""
    fields = header_fields(raw, ("subject", "from"))
    subject = decode_words(fields.get("subject", ""))
    _, sender = parseaddr(fields.get("from", ""))
    return Incoming(subject=subject, sender=sender)


def header_fields(raw: bytes, names: tuple[str, ...]) -> dict[str, str]:
    """The first occurrence of each named field (lowercase names), unfolded, each cut to FIELD_MAX.

    The header block ends at the first empty line, or at HEADER_MAX bytes, or where the bytes end; a
    line that is no ``Name: value`` (garbage, an mbox "From " line) ends the field before it.
    """
    block = raw[:HEADER_MAX]
    end = min((i for i in (block.find(b"\n\n"), block.find(b"\n\r\n")) if i >= 0), default=len(block))
    wanted = {name.encode("ascii") for name in names}
    found: dict[bytes, list[bytes]] = {}
    current: list[bytes] | None = None
    room = 0
    for line in block[:end].split(b"\n"):
        line = line.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t"):  # a folded line: the line break goes, the white space stays
            if current is not None and room > 0:
                piece = line[:room]
                current.append(piece)
                room -= len(piece)
            continue
        name, colon, value = line.partition(b":")
        name = name.strip().lower()
        current = None
        if colon and name in wanted and name not in found:
            current = found[name] = [value[:FIELD_MAX]]
            room = FIELD_MAX - len(current[0])
    return {name.decode("ascii"): b"".join(parts).strip().decode("utf-8", "replace") for name, parts in found.items()}


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded by the standard library's legacy function, on a value that must
    already be bounded (its cost is not linear). An unknown charset or a broken word is read as far as
    it goes, with replacement characters, never an exception."""
    try:
        parts = decode_header(value)
    except HeaderParseError:
        return value
    return "".join(_text(part, charset) for part, charset in parts)


def _text(part: bytes | str, charset: str | None) -> str:
    if isinstance(part, str):
        return part
    if charset is None:
        return part.decode("raw-unicode-escape", "replace")  # how decode_header turned text into bytes
    try:
        # bytes.decode takes text encodings only: a charset named "base64" or "zlib" is a LookupError.
        return part.decode(charset, "replace")
    except (LookupError, UnicodeError, ValueError):
        return part.decode("utf-8", "replace")
