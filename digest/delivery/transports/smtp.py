"""Delivery through an SMTP relay (aiosmtplib): a pool of connections, each reconnecting after
`messages_per_connection` or trouble, and every reply classified as RFC 5321 says (4yz transient,
5yz permanent; a refused address is a bounce, a refused message is not).
"""
from __future__ import annotations

import asyncio
import random
import re
import ssl

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol
from aiosmtplib.typing import SMTPStatus

from digest.core.config import Settings, Smtp
from digest.core.errors import ConfigError
from digest.delivery.transports.base import Envelope, Kind, Outcome, WireMessage

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


class _WireProtocol(SMTPProtocol):
    """aiosmtplib's protocol, except that a WireMessage goes out as it is.

    aiosmtplib normalises line endings and doubles leading dots on every DATA: two regular
    expressions over the whole message, most of the sender's CPU time for an 80 KB digest. A
    personalised digest is already in that form (made once per variant, and tests check it equals
    aiosmtplib's own result), so this skips the work. Any other message takes aiosmtplib's path.
    """

    async def execute_data_command(self, message: bytes, timeout: float | None = None) -> aiosmtplib.SMTPResponse:
        if not isinstance(message, WireMessage):
            return await super().execute_data_command(message, timeout=timeout)
        if self._command_lock is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        async with self._command_lock:
            self._response_pending = True
            self.write(b"DATA\r\n")
            start = await self.read_response(timeout=timeout)
            if start.code != SMTPStatus.start_input:
                raise aiosmtplib.SMTPDataError(start.code, start.message)
            self._response_pending = True
            self.write(message)
            self.write(b".\r\n")
            response = await self.read_response(timeout=timeout)
            if response.code != SMTPStatus.completed:
                raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response


class SmtpConnection:
    """One connection of the pool: connects on first use, reconnects after N messages or trouble."""

    def __init__(self, config: Smtp, retries: int = 3, backoff: float = 2.0) -> None:
        self.config = config
        self.retries = retries
        self.backoff = backoff
        self.client: aiosmtplib.SMTP | None = None
        self.used = 0

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
        # The same protocol object, with the DATA fast path for prepared messages (see _WireProtocol).
        if type(client.protocol) is SMTPProtocol:
            client.protocol.__class__ = _WireProtocol
        self.client, self.used = client, 0

    async def close(self) -> None:
        """QUIT politely at the end of a batch."""
        client, self.client = self.client, None
        if client is not None:
            try:
                if client.is_connected:
                    await asyncio.wait_for(client.quit(), 5)
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                client.close()

    def abort(self) -> None:
        """Drop a connection whose state is unknown (a deadline, a 421, a hang-up): no QUIT to wait on."""
        client, self.client = self.client, None
        if client is not None:
            client.close()

    async def send(self, envelope: Envelope, data: bytes) -> Outcome:
        if self.client is None or not self.client.is_connected or self.used >= self.config.messages_per_connection:
            await self.close()
            trouble = await self._connect_patiently()
            if trouble is not None:
                return trouble
        client = self.client
        assert client is not None  # connected above, or still connected
        try:
            async with asyncio.timeout(self.config.deadline_seconds):
                self.used += 1
                # sendmail with bytes: the message is serialised once, never again per attempt.
                errors, response = await client.sendmail(envelope.sender, [envelope.recipient], data)
        except BaseException as exc:  # noqa: BLE001 — classify() re-raises what is not an SMTP outcome
            if isinstance(exc, asyncio.CancelledError):
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
    """A pool of `connections` SmtpConnections; each message takes whichever is free."""

    wire = True

    def __init__(self, config: Smtp, retries: int = 3, backoff: float = 2.0) -> None:
        self.config = config
        self.where = f"smtp {config.host}:{config.port} ({config.tls}, {config.connections} connections)"
        self.concurrency = config.connections
        self.rate = config.rate
        self._all = [SmtpConnection(config, retries, backoff) for _ in range(config.connections)]
        self._free: asyncio.LifoQueue[SmtpConnection] | None = None

    async def send(self, envelope: Envelope, message: bytes) -> Outcome:
        if self._free is None:  # made in the running loop, on first use
            self._free = asyncio.LifoQueue()
            for connection in self._all:
                self._free.put_nowait(connection)
        connection = await self._free.get()
        try:
            return await connection.send(envelope, message)
        finally:
            self._free.put_nowait(connection)

    async def close(self) -> None:
        await asyncio.gather(*(connection.close() for connection in self._all))


def open_transport(settings: Settings, box: str, folder: object = None) -> SmtpTransport:
    """The relay of [smtp]; its password is read now, so that a missing one stops the run before
    any message, not once per message."""
    if settings.smtp is None:
        raise ConfigError('delivery.transport is "smtp" but digest.toml has no [smtp] table')
    settings.smtp.resolve_password()
    return SmtpTransport(settings.smtp, settings.delivery.retries, settings.delivery.retry_base_seconds)
