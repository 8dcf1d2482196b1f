"""Rendered variant → an RFC 5322 message: multipart/alternative, text first, HTML last, UTF-8."""
from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime, getaddresses, localtime

from digest.core.config import Settings
from digest.core.errors import ConfigError
from digest.core.model import Rendered
from digest.core.text import one_line

# Headers fold at 78 (encoded words stay under RFC 2047's 75 characters). Python's default policy
# would also re-fold a long List-Unsubscribe into encoded words, which breaks it: such headers are
# set with set_raw() already folded, and refold_source="none" leaves raw values as they are.
POLICY = default.clone(refold_source="none")


def parse_sender(sender: str) -> Address:
    """"Le Quotidien <digest@quotidien.example.ma>" → an Address; a non-ASCII local part is refused."""
    pairs = getaddresses([sender])
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        raise ConfigError(f"newsletter.sender {sender!r} is not an address like 'Name <news@example.com>'")
    name, address = pairs[0]
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise ConfigError(f"newsletter.sender {sender!r}: the part before @ must be ASCII")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ConfigError(f"newsletter.sender {sender!r}: {domain!r} is not a valid domain") from None
    return Address(display_name=one_line(name), username=local, domain=domain)


def return_path(settings: Settings) -> str:
    """The envelope sender every message goes out with: [smtp] envelope_from, else the From address."""
    if settings.smtp is not None and settings.smtp.envelope_from:
        return settings.smtp.envelope_from
    return parse_sender(settings.newsletter.sender).addr_spec


def message_id(edition_key: str, recipient: str, domain: str) -> str:
    """Deterministic per (edition, recipient): a re-sent message is recognisable as the same one."""
    digest = hashlib.sha256(f"{edition_key}\x1f{recipient.lower()}".encode()).hexdigest()[:24]
    return f"<{edition_key}.{digest}@{domain}>"


def now() -> datetime:
    """The Date header's time; SOURCE_DATE_EPOCH (the reproducible-builds convention) pins it."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return localtime()


def build(
    rendered: Rendered,
    sender: str,
    to: str,
    edition_key: str,
    reply_to: str | None = None,
    extra_headers: dict[str, str] | None = None,
    quoted_printable: bool = False,
    date: datetime | None = None,
) -> EmailMessage:
    """One message to one recipient. Header values are single lines: CR/LF can never add a header."""
    from_address = parse_sender(sender)
    msg = EmailMessage(policy=POLICY)
    msg["From"] = from_address
    msg["To"] = one_line(to)
    if reply_to:
        msg["Reply-To"] = one_line(reply_to)
    msg["Subject"] = one_line(rendered.subject)
    msg["Date"] = format_datetime(date or now())
    msg["Message-ID"] = message_id(edition_key, to, from_address.domain)
    msg["MIME-Version"] = "1.0"
    for name, value in (extra_headers or {}).items():
        msg[name] = one_line(value)
    # Python picks quoted-printable or base64 by size; personalisation needs quoted-printable, where
    # a token's characters stand as themselves.
    cte = "quoted-printable" if quoted_printable else None  # None: the email package's own choice
    msg.set_content(rendered.text, charset="utf-8", cte=cte)
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte=cte)
    # A boundary derived from the Message-ID, not random: the same message is the same bytes.
    msg.set_boundary("=_digest_" + hashlib.sha256(msg["Message-ID"].encode()).hexdigest()[:32])
    return msg


def to_bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=POLICY.clone(linesep="\r\n"))

