"""A rendered variant + one subscriber → the message's bytes, in microseconds.

Everything that costs milliseconds (MJML, CSS inlining, MIME encoding) happens once per variant in
`Template`. Per recipient only the slots change: the To, Message-ID and List-Unsubscribe lines, and
the subscriber's token inside the encoded bodies. The token always has the same length and only
characters that quoted-printable leaves alone, so the encoded body of a filled message is the
template's encoded body with the placeholder's characters overwritten in place, soft line breaks
and all.

The placeholder is random (`new_slot`): the Sender renders with one as its slot, so no second
replacement happens; any other slot (the fixed display one) is swapped for a fresh random one here.
Either way no feed can write it, and the Template checks it found every slot the rendering holds,
no more and no fewer.
"""
from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, replace
from datetime import datetime
from email import base64mime

from digest.core.model import Rendered
from digest.core.text import one_line
from digest.delivery.transports.base import WireMessage
from digest.pipeline import message

_QP_SOFT_BREAK = b"=\r\n"
_LEADING_DOT = re.compile(rb"(?<=\r\n)\.")
_BARE_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")


_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/^_`{|}~ -]*$")  # a display name that needs no quoting


_SLOT_ALPHABET = string.ascii_letters + string.digits  # quoted-printable never encodes these


def new_slot(length: int) -> str:
    """A random stand-in for a token, `length` letters and digits: unguessable (62**44 for a token's
    44), so no source can write it into an item and have a reader's token put there."""
    return "".join(secrets.choice(_SLOT_ALPHABET) for _ in range(length))


def fits(slot: str, length: int) -> bool:
    """Whether a rendering's slot can be the placeholder itself: token-long, letters and digits."""
    return len(slot) == length and all(c in _SLOT_ALPHABET for c in slot)


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int
    email: str  # validated: ASCII, no CR/LF
    name: str
    token: str  # exactly the placeholder's length
    message_id: str | None = None  # when the caller has it already (the ledger records it too)
    tag: str = ""  # the VERP tag, exactly the tag slot's length, when the template has one


@dataclass(frozen=True)
class Feedback:
    """The headers that let bounces and complaints come back to their reader ([bounces]): one
    Feedback-ID per variant, and the reader's signed tag in X-Digest-ID (and CFBL-Feedback-ID beside
    CFBL-Address, RFC 9477), which feedback loops keep when they redact the recipient."""

    feedback_id: str  # campaign:variant:digest:sender (Gmail's postmaster tools read it)
    tag_length: int
    complaints_address: str | None = None


class Template:
    """One variant's message, encoded once, with the positions of its per-recipient slots."""

    def __init__(
        self,
        rendered: Rendered,
        *,
        sender: str,
        edition_key: str,
        list_id: str,
        list_name: str,
        base_url: str,
        token_length: int,
        unsubscribe_mailto: str | None = None,
        reply_to: str | None = None,
        date: datetime | None = None,
        feedback: Feedback | None = None,
    ) -> None:
        self.edition_key = edition_key
        self.base_url = base_url
        self.unsubscribe_mailto = unsubscribe_mailto
        self.domain = message.parse_sender(sender).domain
        if fits(rendered.slot, token_length):
            self.placeholder, filled = rendered.slot, rendered
        else:
            self.placeholder = new_slot(token_length)
            filled = replace(rendered, html=rendered.html.replace(rendered.slot, self.placeholder),
                             text=rendered.text.replace(rendered.slot, self.placeholder), slot=self.placeholder)
        self._expected = filled.html.count(self.placeholder) + filled.text.count(self.placeholder)
        headers = {"List-Id": f"{one_line(list_name)} <{list_id}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        # The reader's tag is a slot of the header block, like the token is of the bodies: a fixed-length
        # placeholder split out once, so that filling it costs a join, not a header built per reader.
        self.tag_slot = new_slot(feedback.tag_length) if feedback else ""
        msg = message.build(filled, sender, to="placeholder@invalid", edition_key=edition_key, reply_to=reply_to,
                            extra_headers=headers, quoted_printable=True, date=date)
        del msg["To"]
        del msg["Message-ID"]
        raw = message.to_bytes(msg)
        head, body = raw.split(b"\r\n\r\n", 1)
        if not body.endswith(b"\r\n") or _BARE_LINE_END.search(raw):
            raise ValueError("the encoded message must use CRLF line endings throughout")
        self._head = (feedback_lines(feedback, self.tag_slot) if feedback else b"") + head + b"\r\n"
        self._head_pieces = self._head.split(self.tag_slot.encode()) if self.tag_slot else [self._head]
        self._pieces = self._split(b"\r\n" + body)
        # The same message as SMTP's DATA carries it: lines that start with "." doubled (RFC 5321
        # 4.5.2), done here once per variant instead of once per message on the sending path.
        self._wire_pieces = self._split(_LEADING_DOT.sub(b"..", b"\r\n" + body))

    def _split(self, body: bytes) -> list[bytes | tuple[int, int]]:
        """The body as constant byte runs and (start, end) slices of the token, in order."""
        chars = [re.escape(c.encode()) for c in self.placeholder]
        soft_break = b"(?:" + re.escape(_QP_SOFT_BREAK) + b")?"
        pattern = re.compile(soft_break.join(chars))
        pieces: list[bytes | tuple[int, int]] = []
        last = 0
        for match in pattern.finditer(body):
            pieces.append(body[last:match.start()])
            chunk, taken = match.group(), 0
            for part in chunk.split(_QP_SOFT_BREAK):
                pieces.append((taken, taken + len(part)))
                taken += len(part)
                pieces.append(_QP_SOFT_BREAK)
            pieces.pop()  # no soft break after the last part
            last = match.end()
        pieces.append(body[last:])
        if last == 0:
            raise ValueError("the rendered email has no unsubscribe slot")
        found = sum(1 for p in pieces if isinstance(p, tuple) and p[0] == 0)
        if found != self._expected:
            # Never fill a place the rendering did not mean: refuse the variant rather than guess.
            raise ValueError(f"the encoded email holds {found} slots where the rendering has {self._expected}")
        return pieces

    def list_unsubscribe(self, token: str) -> str:
        links = [f"<{self.base_url}/unsubscribe/{token}>"]
        if self.unsubscribe_mailto:
            links.append(f"<mailto:{self.unsubscribe_mailto}?subject=unsubscribe%20{token}>")
        return ", ".join(links)

    def message_id(self, email: str) -> str:
        return message.message_id(self.edition_key, email, self.domain)

    def fill(self, recipient: Recipient) -> bytes:
        """The message as it is stored (outbox) and signed (DKIM)."""
        return self._fill(recipient, self._pieces, b"")

    def fill_wire(self, recipient: Recipient, prefix: bytes = b"") -> WireMessage:
        """The message ready for DATA: dot-stuffed, CRLF throughout (`prefix`: a DKIM-Signature)."""
        return WireMessage(self._fill(recipient, self._wire_pieces, prefix))

    def _fill(self, recipient: Recipient, pieces: list[bytes | tuple[int, int]], prefix: bytes) -> bytes:
        token = recipient.token.encode("ascii")
        if len(token) != len(self.placeholder):
            raise ValueError("a token has the wrong length")
        if len(recipient.tag) != len(self.tag_slot):
            raise ValueError("a VERP tag has the wrong length")
        head = (
            f"To: {format_to(recipient.name, recipient.email)}\r\n"
            f"Message-ID: {recipient.message_id or self.message_id(recipient.email)}\r\n"
            f"List-Unsubscribe: {self.list_unsubscribe(recipient.token)}\r\n"
        ).encode("ascii")
        fixed = recipient.tag.encode("ascii").join(self._head_pieces)
        # One join, one copy of the 50 KiB: the pieces are the encoded message's bytes and its token slots.
        return b"".join([prefix, head, fixed, *[token[p[0]:p[1]] if isinstance(p, tuple) else p for p in pieces]])


def feedback_lines(feedback: Feedback, tag: str) -> bytes:
    """The feedback headers, written as they go (ASCII values checked in digest.toml, each one line):
    the email package would fold a long Feedback-ID into an encoded word, which nobody could read."""
    lines = [f"Feedback-ID: {one_line(feedback.feedback_id)}", f"X-Digest-ID: {tag}"]
    if feedback.complaints_address:
        lines += [f"CFBL-Address: {one_line(feedback.complaints_address)}; report=arf", f"CFBL-Feedback-ID: {tag}"]
    return "".join(line + "\r\n" for line in lines).encode("ascii")


def format_to(name: str, email: str) -> str:
    """`Name <address>` with the name quoted or RFC 2047-encoded; CR/LF can never get through."""
    name = one_line(name)
    if not name:
        return email
    if name.isascii():
        if _ATOM.match(name):
            return f"{name} <{email}>"
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{email}>'
    return f"{encoded_words(name)} <{email}>"


def encoded_words(text: str) -> str:
    """RFC 2047 B-encoded words, each under 76 characters, split after a space where possible and
    never inside a character: the white space between encoded words is not part of the text, so the
    spaces of the name travel inside them.

    The same as email.header.Header gives, at a twentieth of its cost: this runs once per recipient.
    """
    pieces: list[str] = []
    for word in re.findall(r"\S+\s*|\s+", text):
        while len(word.encode("utf-8")) > 45:  # a word too long for one encoded word: cut it by characters
            cut = 45
            while len(word[:cut].encode("utf-8")) > 45:
                cut -= 1
            pieces.append(word[:cut])
            word = word[cut:]
        pieces.append(word)
    words, chunk = [], ""
    for piece in pieces:
        if chunk and len((chunk + piece).encode("utf-8")) > 45:  # 45 bytes → 60 base64 characters
            words.append(base64mime.header_encode(chunk, "utf-8"))
            chunk = ""
        chunk += piece
    words.append(base64mime.header_encode(chunk, "utf-8"))
    return " ".join(words)
