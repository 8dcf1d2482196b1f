"""Messages as a mail client reads them: parsed with the modern policy, their two bodies."""
from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)


def message_parts(data: bytes) -> tuple[str, str]:
    """(plain text, HTML) of a multipart/alternative message."""
    msg = parse(data)
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()
