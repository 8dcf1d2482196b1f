"""The delivery seam: what a transport is, what it is given and what it answers.

    Transport.where         where it delivers, for people ("smtp host:587 (…)", "outbox PATH")
    Transport.concurrency   how many messages it takes at once (the send loop runs as many workers)
    Transport.rate          messages per second it may be given over all of them (0: no limit)
    Transport.wire          True: it wants each message as SMTP's DATA carries it (a WireMessage)
    await send(envelope, message) -> Outcome
    await close()

and, optionally:

    Transport.holds_end     True: send() also takes `before_end`, an awaitable it waits for before the
                            message's last step (SMTP's final dot), and without which it delivers
                            nothing (see loop.SendLoop._one); a transport without it is given a
                            message only once the previous one's outcome is committed
    Transport.announces     True (with holds_end): send() also takes `then`, the envelope and message the
                            caller sends next, which it may start with this one's end (SMTP
                            pipelining: its MAIL, RCPT and DATA written with this message's final
                            dot); the caller's next send() is that message, or it calls
                            withdraw(envelope) and the transport drops what it started

The send loop knows nothing else of a transport: a new one (an HTTP email API, say) is a module
with a class that keeps this protocol and an `open_transport(settings, box, folder)`, and one line
in digest.delivery.transports.TRANSPORTS.
"""
from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol


class Kind(enum.StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"  # 4xx, a dropped connection, a deadline: try again later
    FAILED = "failed"  # 5xx: this message will not go, ever
    # A StrEnum: a report counts outcomes by kind and prints them as the words they are.


@dataclass(frozen=True)
class Outcome:
    """What became of one message.

    bounce: the recipient's address does not exist (550/551/553, x.1.x): never send to it again
    reconnect: the connection cannot be trusted any more (421, a drop, a deadline)
    fatal: no message can go this way (unreachable, login refused, our return path refused): the run
           stops, and this message stays due for the next one
    """

    kind: Kind
    code: int | None = None
    message: str = ""
    bounce: bool = False
    reconnect: bool = False
    fatal: bool = False


@dataclass(frozen=True)
class Envelope:
    """Who a message is from and to, and the name it is filed under (an outbox's file name)."""

    sender: str  # the return path
    recipient: str
    name: str


class WireMessage(bytes):
    """Message bytes already in SMTP DATA form: CRLF line endings, leading dots doubled."""


class Transport(Protocol):
    where: str
    concurrency: int
    rate: float
    wire: bool

    async def send(self, envelope: Envelope, message: bytes) -> Outcome: ...

    async def close(self) -> None: ...


class HoldsEnd(Transport, Protocol):
    """A transport that waits for `before_end` before a message's last step."""

    holds_end: bool

    async def send(self, envelope: Envelope, message: bytes, before_end: Awaitable[None] | None = None) -> Outcome: ...


class Announces(HoldsEnd, Protocol):
    """A transport that may start the caller's next message with this one's end."""

    announces: bool

    async def send(self, envelope: Envelope, message: bytes, before_end: Awaitable[None] | None = None,
                   then: tuple[Envelope, bytes] | None = None) -> Outcome: ...

    def withdraw(self, envelope: Envelope) -> None: ...
