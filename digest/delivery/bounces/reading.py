"""Mail that comes back, read at a bounded cost: one message on a pipe, files, Maildir folders and
mbox files. Anyone can write to the bounce address, so nothing here trusts a message's size or shape.

Of each message only the first MESSAGE_MAX bytes are kept (a report's status comes first; the copy of
our own message after it may be cut, as many MTAs cut it anyway). Before the standard library's parser
sees them, they are cut again before the NESTING_MAX-th multipart or message part: its parser recurses
once per level and costs the square of the depth, so a thousand nested parts would exhaust it.
"""
from __future__ import annotations

import email
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import Message
from pathlib import Path
from typing import BinaryIO

from subscribers.mailin import read_piped

MESSAGE_MAX = 512 * 1024  # bytes of a message kept: a report and most of the message it returns
NESTING_MAX = 12  # multipart or message parts in one message: a DSN has 3, an ARF report 3 or 4
_LINE_MAX = 64 * 1024  # an mbox line longer than this is read in pieces
_NESTED = re.compile(rb"(?im)^content-type[ \t]*:[ \t]*(?:\r?\n[ \t]+)?(?:multipart|message)/")


@dataclass(frozen=True)
class Incoming:
    """One message as it came: its first bytes (at most MESSAGE_MAX) and where it came from."""

    raw: bytes
    source: str  # "stdin", a file's path, "PATH (message 3)" in an mbox, "imap:INBOX/UID 7"


def bounded(raw: bytes) -> bytes:
    """The part of a message the parser may see: MESSAGE_MAX bytes, cut before too deep a nesting."""
    raw = raw[:MESSAGE_MAX]
    for count, match in enumerate(_NESTED.finditer(raw), 1):
        if count > NESTING_MAX:
            return raw[:match.start()]
    return raw


def parse(raw: bytes) -> Message:
    """The message, parsed by the standard library's compat32 policy (linear in its headers, unlike the
    modern one), from its bounded bytes."""
    return email.message_from_bytes(bounded(raw), policy=policy.compat32)


def from_stream(stream: BinaryIO, source: str = "stdin") -> Incoming:
    """One message on a pipe (an MTA's alias): kept bounded, the rest drained unread."""
    return Incoming(read_piped(stream, keep=MESSAGE_MAX).head, source)


def from_paths(paths: Iterable[Path]) -> Iterator[Incoming]:
    """Every message of these files (one message each, or an mbox) and Maildir folders, in order."""
    for path in paths:
        if path.is_dir():
            yield from _maildir(path)
        else:
            yield from _file(path)


def _maildir(folder: Path) -> Iterator[Incoming]:
    boxes = [folder / "new", folder / "cur"]
    if not any(box.is_dir() for box in boxes):
        raise FileNotFoundError(f"{folder} is a folder but not a Maildir (it has no new/ or cur/)")
    for box in boxes:
        if box.is_dir():
            for name in sorted(os.listdir(box)):
                if not name.startswith("."):
                    yield from _file(box / name, mbox=False)


def _file(path: Path, mbox: bool = True) -> Iterator[Incoming]:
    with path.open("rb") as handle:
        first = handle.read(5)
        handle.seek(0)
        if mbox and first == b"From ":
            yield from _mbox(handle, str(path))
        else:
            yield Incoming(handle.read(MESSAGE_MAX), str(path))


def _mbox(handle: BinaryIO, name: str) -> Iterator[Incoming]:
    """An mbox's messages, each cut at MESSAGE_MAX: read a line (or a piece of a long one) at a time."""
    kept: list[bytes] = []
    size, number, at_start, previous_blank = 0, 0, True, True
    while True:
        line = handle.readline(_LINE_MAX)
        if line and at_start and previous_blank and line.startswith(b"From "):
            if number:
                yield Incoming(b"".join(kept), f"{name} (message {number})")
            kept, size, number = [], 0, number + 1
        elif line and size < MESSAGE_MAX:
            piece = line[:MESSAGE_MAX - size]
            kept.append(piece[1:] if at_start and piece.startswith(b">From ") else piece)
            size += len(piece)
        if not line:
            if number:
                yield Incoming(b"".join(kept), f"{name} (message {number})")
            return
        if at_start:
            previous_blank = line in (b"\n", b"\r\n")
        at_start = line.endswith(b"\n")
        previous_blank = previous_blank if at_start else False
