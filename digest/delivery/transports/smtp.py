"""Delivery through an SMTP relay (aiosmtplib): a pool of connections, each reconnecting after
`messages_per_connection` or trouble, and every reply classified as RFC 5321 says (4yz transient,
5yz permanent; a refused address is a bounce, a refused message is not).
"""
from __future__ import annotations

import asyncio
import random
import re
import ssl
from collections.abc import Awaitable
from typing import cast

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol

from digest.core.config import Settings, Smtp
from digest.core.errors import ConfigError
from digest.delivery.transports.base import Envelope, Kind, Outcome, WireMessage
from digest.delivery.transports.smtp_wire import WireProtocol, envelope_commands, fast, transact

SENT, DEFERRED, FAILED = Kind.SENT, Kind.DEFERRED, Kind.FAILED


def _text(message: object) -> str:
    """A reply's text (or an exception's, which stands for one) on one line, at most 300 characters."""
    return " ".join(str(message).split())[:300]


_ENHANCED = re.compile(r"\s*5\.(\d{1,3})\.(\d{1,3})")


def _address_is_gone(code: int, message: str) -> bool:
    """A 5xx to RCPT that says the mailbox does not exist (RFC 3463 x.1.x, x.2.1), not a policy
    refusal (x.7.x: spam, relaying) after which the address itself may be fine."""
    enhanced = _ENHANCED.match(message)
    if enhanced:
        return enhanced[1] == "1" or (enhanced[1] == "2" and enhanced[2] == "1")
    return code in (550, 551, 553)


def classify(exc: BaseException) -> Outcome:
    """An aiosmtplib exception → what the ledger records (RFC 5321 §4.2.1: 4yz transient, 5yz permanent)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients[0] if exc.recipients else None
        code = refused.code if refused else None
        message = _text(refused.message if refused else exc)
        if code is not None and 500 <= code < 600:
            return Outcome(FAILED, code, message, bounce=_address_is_gone(code, message))
        return Outcome(DEFERRED, code, message, reconnect=code == 421)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code, message = exc.code, _text(exc.message)
        if 400 <= code < 500:
            return Outcome(DEFERRED, code, message, reconnect=code == 421)
        if isinstance(exc, aiosmtplib.SMTPSenderRefused) and 500 <= code < 600:
            return Outcome(DEFERRED, code, f"the server refuses the return path: {message}", reconnect=True, fatal=True)
        if not 500 <= code < 600:
            return Outcome(DEFERRED, code, message, reconnect=True)  # nonsense: not the reader's fault
        # 5xx after DATA: this message is refused for good (its content); the address is not.
        return Outcome(FAILED, code, message)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, aiosmtplib.SMTPTimeoutError)):
        return Outcome(DEFERRED, None, "no answer before the deadline", reconnect=True)
    if isinstance(exc, (aiosmtplib.SMTPException, ConnectionError, OSError)):
        return Outcome(DEFERRED, None, _text(f"{exc.__class__.__name__}: {exc}"), reconnect=True)
    raise exc


class SmtpConnection:
    """One connection of the pool: connects on first use, reconnects after N messages or trouble."""

    def __init__(self, config: Smtp, retries: int = 3, backoff: float = 2.0) -> None:
        self.config = config
        self.retries = retries
        self.backoff = backoff
        self.client: aiosmtplib.SMTP | None = None
        self.used = 0
        self.announced: str | None = None  # the message whose envelope is on the wire, its replies owed

    async def _connect_patiently(self) -> Outcome | None:
        """Connect, trying again with backoff while the server is unreachable or busy (4xx); a login,
        TLS or greeting refusal is a configuration error that no retry mends. None: connected."""
        where = f"{self.config.host}:{self.config.port}"
        for attempt in range(1, self.retries + 1):
            try:
                await self._connect()
                return None
            except (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPNotSupported) as exc:
                self.abort()
                return Outcome(DEFERRED, getattr(exc, "code", None), f"{where}: {_text(exc)}", fatal=True)
            except aiosmtplib.SMTPResponseException as exc:
                self.abort()
                if not 400 <= exc.code < 500:
                    return Outcome(DEFERRED, exc.code, f"{where} refuses us: {_text(exc.message)}", fatal=True)
                last = f"{where} is busy: {exc.code} {_text(exc.message)}"
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                self.abort()
                last = f"cannot reach {where}: {_text(f'{exc.__class__.__name__}: {exc}')}"
            if attempt < self.retries:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
        return Outcome(DEFERRED, None, last, fatal=True)

    async def _connect(self) -> None:
        cfg = self.config
        context = ssl.create_default_context() if cfg.tls != "none" else None
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            use_tls=cfg.tls == "implicit",
            start_tls=cfg.tls == "starttls",  # never None: that silently falls back to plaintext
            tls_context=context,
            timeout=cfg.timeout_seconds,
            local_hostname=cfg.local_hostname,  # else aiosmtplib calls getfqdn() on every connection
        )
        self.client = client  # abort() can close it whatever happens next
        await client.connect()
        if cfg.username:
            await client.login(cfg.username, cfg.resolve_password())
        if client.is_ehlo_or_helo_needed:  # what the server offers (PIPELINING, SIZE), known before the first message
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        # The same protocol object, with the DATA fast path for prepared messages (see WireProtocol).
        protocol = client.protocol
        if type(protocol) is SMTPProtocol and protocol.transport is not None:
            protocol.__class__ = WireProtocol
            # Set again: an event loop may keep the protocol's bound methods (uvloop does), which are
            # SMTPProtocol's until the transport is told of the protocol anew.
            protocol.transport.set_protocol(protocol)
        self.client, self.used = client, 0

    async def _transact(self, client: aiosmtplib.SMTP, protocol: WireProtocol, envelope: Envelope,
                        data: WireMessage, before_end: Awaitable[None] | None, announced: bool,
                        then: tuple[Envelope, bytes] | None) -> str:
        """The fast path (smtp_wire.transact), `then`'s envelope written with this message's end when this
        connection will send it (the server pipelines, and it is not the connection's last message)."""
        following = None
        if (then is not None and fast(*then) and self.used < self.config.messages_per_connection
                and client.supports_extension("pipelining")):
            following = envelope_commands(client, then[0].sender, then[0].recipient, len(then[1]))
        try:
            return await transact(client, protocol, envelope, data, self.config.timeout_seconds, before_end,
                                   announced, following)
        finally:  # the final dot refused or not, the next envelope is on the wire, its replies owed
            if following is not None and protocol.owed and then is not None:
                self.announced = then[0].name

    async def close(self) -> None:
        """QUIT politely at the end of a batch (a connection in the middle of an announced message's
        DATA is dropped instead: a QUIT would be taken as its content)."""
        if self.announced is not None:
            self.abort()
        client, self.client = self.client, None
        if client is not None:
            try:
                if client.is_connected:
                    await asyncio.wait_for(client.quit(), 5)
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                client.close()

    def abort(self) -> None:
        """Drop a connection whose state is unknown (a deadline, a 421, a hang-up): no QUIT to wait on."""
        client, self.client, self.announced = self.client, None, None
        if client is not None:
            client.close()

    async def send(self, envelope: Envelope, data: bytes, before_end: Awaitable[None] | None = None,
                   then: tuple[Envelope, bytes] | None = None) -> Outcome:
        """Send one message; with `then` (the next message this connection will be given), that
        message's envelope goes with this one's final dot when it can (`announced` names it then)."""
        announced = self.announced == envelope.name
        if self.announced is not None and not announced:
            self.abort()  # in the middle of another message's DATA: drop it, nothing is delivered
        if self.client is None or not self.client.is_connected or self.used >= self.config.messages_per_connection:
            await self.close()
            announced = False
            trouble = await self._connect_patiently()
            if trouble is not None:
                return trouble
        self.announced = None
        client = self.client
        assert client is not None  # connected above, or still connected
        protocol = client.protocol
        try:
            async with asyncio.timeout(self.config.deadline_seconds):
                self.used += 1
                errors: dict[str, aiosmtplib.SMTPResponse] = {}
                # (announced: checked already, when it went with the message before)
                if isinstance(protocol, WireProtocol) and (announced or fast(envelope, data)):
                    response = await self._transact(client, protocol, envelope, cast(WireMessage, data), before_end,
                                                    announced, then)
                else:  # sendmail with bytes: the message is serialised once, never again per attempt.
                    if before_end is not None:
                        await asyncio.shield(before_end)
                    errors, response = await client.sendmail(envelope.sender, [envelope.recipient], data)
        except BaseException as exc:  # noqa: BLE001 — classify() re-raises what is not an SMTP outcome
            if isinstance(exc, asyncio.CancelledError):
                self.abort()
                raise
            outcome = classify(exc)
            if outcome.reconnect:
                self.abort()
            return outcome
        if errors:  # one recipient per message: a refusal here means that one
            code, message = next(iter(errors.values()))
            return classify(aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(code, message, envelope.recipient)]))
        return Outcome(SENT, 250, _text(response))


class SmtpTransport:
    """A pool of `connections` SmtpConnections; each message takes whichever is free, but a message
    announced with the one before it (`then`) takes the connection its envelope is on."""

    wire = True
    holds_end = True  # send() writes a message's final dot only once `before_end` is done
    announces = True  # send() takes `then`, the message its caller sends next

    def __init__(self, config: Smtp, retries: int = 3, backoff: float = 2.0) -> None:
        self.config = config
        self.where = f"smtp {config.host}:{config.port} ({config.tls}, {config.connections} connections)"
        self.concurrency = config.connections
        self.rate = config.rate
        self._all = [SmtpConnection(config, retries, backoff) for _ in range(config.connections)]
        self._free: asyncio.LifoQueue[SmtpConnection] | None = None
        self._announced: dict[str, SmtpConnection] = {}  # a message's name → the connection its envelope is on

    async def send(self, envelope: Envelope, message: bytes, before_end: Awaitable[None] | None = None,
                   then: tuple[Envelope, bytes] | None = None) -> Outcome:
        """Send one message. `then`: the message the caller sends next (its own next call), whose
        envelope may go with this one's final dot; the caller sends it, or withdraws it."""
        if self._free is None:  # made in the running loop, on first use
            self._free = asyncio.LifoQueue()
            for connection in self._all:
                self._free.put_nowait(connection)
        announced = envelope.name in self._announced
        connection = self._announced.pop(envelope.name) if announced else await self._free.get()
        try:
            return await connection.send(envelope, message, before_end, then)
        finally:
            if connection.announced is not None:
                self._drop(connection.announced)  # (never two at once for one message: the older is dropped)
                self._announced[connection.announced] = connection
            else:
                self._free.put_nowait(connection)

    def withdraw(self, envelope: Envelope) -> None:
        """The message announced by send(…, then=) will not be sent: its connection is dropped before
        its final dot (nothing is delivered) and goes back to the pool."""
        self._drop(envelope.name)

    def _drop(self, name: str) -> None:
        connection = self._announced.pop(name) if name in self._announced else None
        if connection is not None and self._free is not None:
            connection.abort()
            self._free.put_nowait(connection)

    async def close(self) -> None:
        for name in list(self._announced):
            self._drop(name)
        await asyncio.gather(*(connection.close() for connection in self._all))


def open_transport(settings: Settings, box: str, folder: object = None) -> SmtpTransport:
    """The relay of [smtp]; its password is read now, so that a missing one stops the run before
    any message, not once per message."""
    if settings.smtp is None:
        raise ConfigError('delivery.transport is "smtp" but digest.toml has no [smtp] table')
    settings.smtp.resolve_password()
    return SmtpTransport(settings.smtp, settings.delivery.retries, settings.delivery.retry_base_seconds)
