"""Delivery through an SMTP relay (aiosmtplib): a pool of connections, each reconnecting after
`messages_per_connection` or trouble, and every reply classified as RFC 5321 says (4yz transient,
5yz permanent; a refused address is a bounce, a refused message is not).
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import re
import ssl
from collections.abc import Awaitable

import aiosmtplib
from aiosmtplib.protocol import MAX_LINE_LENGTH, MAX_RESPONSE_LENGTH, SMTPProtocol
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
    """aiosmtplib's protocol, with a fast path for a prepared message (a WireMessage) to a plain address.

    aiosmtplib normalises line endings and doubles leading dots on every DATA (two regular expressions
    over the whole message), parses each address four times and waits for each reply before the next
    command. A personalised digest is already in DATA's form (made once per variant; tests check it
    equals aiosmtplib's own result), its addresses were checked at import, and a server that offers
    PIPELINING (RFC 2920) takes MAIL, RCPT and DATA in one write: two round trips a message, not four.
    Any other message or address takes aiosmtplib's own path.
    """

    _arrived: asyncio.Future[None] | None = None  # set: a reply may be in the buffer (during exchange())
    _exchanging = False
    _expired = False  # the exchange's deadline passed

    async def execute_data_command(self, message: bytes, timeout: float | None = None) -> aiosmtplib.SMTPResponse:
        """aiosmtplib's DATA (its sendmail(), for an address of another form), a WireMessage as it is."""
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
            self.write(message + b".\r\n")
            response = await self.read_response(timeout=timeout)
            if response.code != SMTPStatus.completed:
                raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response

    async def exchange(self, payload: bytes, replies: int, timeout: float) -> list[aiosmtplib.SMTPResponse]:
        """Write `payload` (commands, or a message and its final dot), then read `replies` replies, all of
        them within `timeout` seconds (SMTPTimeoutError). The deadline is one timer, armed only when a
        reply is not in already: cheaper than asyncio.timeout() around every exchange."""
        if self._command_lock is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        async with self._command_lock:
            self._exchanging, self._expired = True, False
            timer: asyncio.TimerHandle | None = None
            try:
                self.write(payload)
                got: list[aiosmtplib.SMTPResponse] = []
                while len(got) < replies:
                    reply = self._one_reply()
                    if reply is not None:
                        got.append(reply)
                        continue
                    if self.transport is None:
                        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
                    if timer is None:
                        timer = self._loop.call_later(timeout, self._expire)
                    if self._expired:
                        raise aiosmtplib.SMTPTimeoutError("Timed out waiting for server response")
                    self._arrived = self._loop.create_future()
                    await self._arrived
                return got
            finally:
                if timer is not None:
                    timer.cancel()
                self._exchanging, self._arrived = False, None

    def _one_reply(self) -> aiosmtplib.SMTPResponse | None:
        """The next reply in the buffer, if whole: a one-line reply ("250 2.0.0 Ok") read here as
        aiosmtplib reads it, at a third of the cost; any other (several lines, malformed, too long)
        by aiosmtplib itself."""
        buffer = self._buffer
        end = buffer.find(b"\n")
        if 4 <= end < MAX_LINE_LENGTH and buffer[3] == 0x20 and buffer[:3].isdigit():
            line = bytes(buffer[:end + 1])
            del buffer[:end + 1]
            return aiosmtplib.SMTPResponse(int(line[:3]), line[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape"))
        return self._read_response_from_buffer() if end != -1 else None

    def _expire(self) -> None:
        self._expired = True
        self._wake(aiosmtplib.SMTPTimeoutError("Timed out waiting for server response"))

    def _wake(self, exc: BaseException | None = None) -> None:
        arrived = self._arrived
        if arrived is not None and not arrived.done():
            if exc is None:
                arrived.set_result(None)
            else:
                arrived.set_exception(exc)

    def data_received(self, data: bytes) -> None:
        if not self._exchanging:
            super().data_received(data)
            return
        self._buffer.extend(data)  # several replies may come in one read: none is dropped
        if len(self._buffer) > MAX_RESPONSE_LENGTH:
            del self._buffer[:]
            self._wake(aiosmtplib.SMTPResponseException(SMTPStatus.invalid_response.value, "Response too long"))
        elif b"\n" in data:
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._wake(aiosmtplib.SMTPServerDisconnected("Connection lost"))

    def eof_received(self) -> bool:
        self._wake(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return super().eof_received()


# An address sent as it is: ASCII, no quoting, nothing that could end the command line. Anything else
# (a quoted local part, an address literal, a non-ASCII address) goes through aiosmtplib's checks.
_PLAIN = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


async def _transact(client: aiosmtplib.SMTP, protocol: _WireProtocol, sender: str, recipient: str,
                    message: WireMessage, timeout: float, before_end: Awaitable[None] | None = None) -> str:
    """One message to one recipient, as sendmail() would do it; the final reply's text. The final dot
    waits for `before_end` (the previous outcome's commit); if that fails, the connection is dropped
    without it, and the server delivers nothing."""
    size = b" SIZE=%d" % len(message) if client.supports_extension("size") else b""
    commands = [b"MAIL FROM:<" + sender.encode("ascii") + b">" + size + b"\r\n",
                b"RCPT TO:<" + recipient.encode("ascii") + b">\r\n", b"DATA\r\n"]
    try:
        if client.supports_extension("pipelining"):
            mail, rcpt, data = await protocol.exchange(b"".join(commands), 3, timeout)
        else:  # one at a time; a refusal stands for the replies of the commands not sent
            (mail,) = await protocol.exchange(commands[0], 1, timeout)
            rcpt = data = mail
            if mail.code == SMTPStatus.completed:
                (rcpt,) = await protocol.exchange(commands[1], 1, timeout)
                data = rcpt
                if rcpt.code in (SMTPStatus.completed, SMTPStatus.will_forward):
                    (data,) = await protocol.exchange(commands[2], 1, timeout)
        if data.code == SMTPStatus.start_input and not (mail.code == SMTPStatus.completed
                                                         and rcpt.code in (SMTPStatus.completed, SMTPStatus.will_forward)):
            await protocol.exchange(b".\r\n", 1, timeout)  # DATA taken despite a refusal (RFC 2920 §3.1): an empty end
        if mail.code != SMTPStatus.completed:
            raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, sender)
        if rcpt.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
            raise aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.message, recipient)])
        if data.code != SMTPStatus.start_input:
            raise aiosmtplib.SMTPDataError(data.code, data.message)
        end = message + b".\r\n"
        if before_end is not None:
            protocol.write(message)  # the body on the wire meanwhile, its end held back
            end = b".\r\n"
            await _before_end(client, before_end)
        (done,) = await protocol.exchange(end, 1, timeout)
        if done.code != SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(done.code, done.message)
        return done.message
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPException):  # the envelope reset, as sendmail() does
            await client.rset()
        raise


async def _before_end(client: aiosmtplib.SMTP, before_end: Awaitable[None]) -> None:
    """Wait for `before_end`; if it fails (or the wait is cut short), drop the connection: a message
    whose final dot was never written is not delivered."""
    if isinstance(before_end, asyncio.Future) and before_end.done():  # most often: no wait, no shield
        failed = before_end.exception()
        if failed is not None:
            client.close()
            raise failed
        return
    try:
        await asyncio.shield(before_end)
    except BaseException:
        client.close()
        raise


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
        if client.is_ehlo_or_helo_needed:  # what the server offers (PIPELINING, SIZE), known before the first message
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        # The same protocol object, with the DATA fast path for prepared messages (see _WireProtocol).
        protocol = client.protocol
        if type(protocol) is SMTPProtocol and protocol.transport is not None:
            protocol.__class__ = _WireProtocol
            # Set again: an event loop may keep the protocol's bound methods (uvloop does), which are
            # SMTPProtocol's until the transport is told of the protocol anew.
            protocol.transport.set_protocol(protocol)
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

    async def send(self, envelope: Envelope, data: bytes, before_end: Awaitable[None] | None = None) -> Outcome:
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
                protocol = client.protocol
                errors: dict[str, aiosmtplib.SMTPResponse] = {}
                if (isinstance(data, WireMessage) and isinstance(protocol, _WireProtocol)
                        and _PLAIN.fullmatch(envelope.sender) and _PLAIN.fullmatch(envelope.recipient)):
                    response = await _transact(client, protocol, envelope.sender, envelope.recipient, data,
                                               self.config.timeout_seconds, before_end)
                else:  # sendmail with bytes: the message is serialised once, never again per attempt.
                    if before_end is not None:
                        await asyncio.shield(before_end)
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
    holds_end = True  # send() writes a message's final dot only once `before_end` is done

    def __init__(self, config: Smtp, retries: int = 3, backoff: float = 2.0) -> None:
        self.config = config
        self.where = f"smtp {config.host}:{config.port} ({config.tls}, {config.connections} connections)"
        self.concurrency = config.connections
        self.rate = config.rate
        self._all = [SmtpConnection(config, retries, backoff) for _ in range(config.connections)]
        self._free: asyncio.LifoQueue[SmtpConnection] | None = None

    async def send(self, envelope: Envelope, message: bytes, before_end: Awaitable[None] | None = None) -> Outcome:
        if self._free is None:  # made in the running loop, on first use
            self._free = asyncio.LifoQueue()
            for connection in self._all:
                self._free.put_nowait(connection)
        connection = await self._free.get()
        try:
            return await connection.send(envelope, message, before_end)
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
