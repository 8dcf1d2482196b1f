"""SMTP's fast path for a prepared message (a WireMessage) to a plain address: aiosmtplib's protocol
with pipelined exchanges and one timer each (WireProtocol), and one transaction on it (transact),
whose envelope may have gone with the previous message's final dot.

Used by smtp.SmtpConnection; any other message or address takes aiosmtplib's own path there.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable

import aiosmtplib
from aiosmtplib.protocol import MAX_LINE_LENGTH, MAX_RESPONSE_LENGTH, SMTPProtocol
from aiosmtplib.typing import SMTPStatus

from digest.delivery.transports.base import Envelope, WireMessage


class WireProtocol(SMTPProtocol):
    """aiosmtplib's protocol, with a fast path for a prepared message (a WireMessage) to a plain address.

    aiosmtplib normalises line endings and doubles leading dots on every DATA (two regular expressions
    over the whole message), parses each address four times and waits for each reply before the next
    command. A personalised digest is already in DATA's form (made once per variant; tests check it
    equals aiosmtplib's own result), its addresses were checked at import, and a server that offers
    PIPELINING (RFC 2920) takes MAIL, RCPT and DATA in one write, and that write can be the previous
    message's final dot: one round trip a message, not four. Any other message or address takes
    aiosmtplib's own path.
    """

    _arrived: asyncio.Future[None] | None = None  # set: a reply may be in the buffer (during exchange())
    _exchanging = False  # replies are read by exchange(): during one, or while some are owed
    owed = 0  # replies to commands already written, for the next exchange to read
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

    async def exchange(self, payload: bytes, replies: int, timeout: float, owed: int = 0) -> list[aiosmtplib.SMTPResponse]:
        """Write `payload` (commands, or a message and its final dot), then read `replies` replies, all of
        them within `timeout` seconds (SMTPTimeoutError). The deadline is one timer, armed only when a
        reply is not in already: cheaper than asyncio.timeout() around every exchange.

        `owed`: the replies to commands at the end of `payload` that are not read now but by the next
        exchange, whose payload is then empty (the next message's envelope, written with this one's
        final dot). Meanwhile they are kept as they come."""
        if self._command_lock is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        async with self._command_lock:
            self._exchanging, self._expired, self.owed = True, False, 0
            timer: asyncio.TimerHandle | None = None
            try:
                if payload:
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
                self.owed = owed
                return got
            finally:
                if timer is not None:
                    timer.cancel()
                self._exchanging, self._arrived = self.owed > 0, None

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
PLAIN = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


def fast(envelope: Envelope, message: bytes) -> bool:
    """A prepared message to a plain address: WireProtocol's fast path takes it."""
    return (isinstance(message, WireMessage) and PLAIN.fullmatch(envelope.sender) is not None
            and PLAIN.fullmatch(envelope.recipient) is not None)


def envelope_commands(client: aiosmtplib.SMTP, sender: str, recipient: str, size: int) -> list[bytes]:
    """MAIL, RCPT and DATA for one message to one plain address."""
    extra = b" SIZE=%d" % size if client.supports_extension("size") else b""
    return [b"MAIL FROM:<" + sender.encode("ascii") + b">" + extra + b"\r\n",
            b"RCPT TO:<" + recipient.encode("ascii") + b">\r\n", b"DATA\r\n"]


async def transact(client: aiosmtplib.SMTP, protocol: WireProtocol, envelope: Envelope, message: WireMessage,
                   timeout: float, before_end: Awaitable[None] | None = None, announced: bool = False,
                   then: list[bytes] | None = None) -> str:
    """One message to one recipient, as sendmail() would do it; the final reply's text. The final dot
    waits for `before_end` (the previous outcome's commit); if that fails, the connection is dropped
    without it, and the server delivers nothing.

    `announced`: this message's MAIL, RCPT and DATA went with the previous message's final dot; only
    their replies are read here. `then`: the next message's, written with this one's final dot (RFC
    2920 §3.1: a message's content may begin a group, and DATA ends it): one round trip a message."""
    sender, recipient = envelope.sender, envelope.recipient
    try:
        if announced:
            mail, rcpt, data = await protocol.exchange(b"", 3, timeout)
        elif client.supports_extension("pipelining"):
            commands = envelope_commands(client, sender, recipient, len(message))
            mail, rcpt, data = await protocol.exchange(b"".join(commands), 3, timeout)
        else:  # one at a time; a refusal stands for the replies of the commands not sent
            commands = envelope_commands(client, sender, recipient, len(message))
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
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPException):  # the envelope reset, as sendmail() does
            await client.rset()
        raise
    end = message + b".\r\n"
    if before_end is not None:
        protocol.write(message)  # the body on the wire meanwhile, its end held back
        end = b".\r\n"
        await hold_end(client, before_end)
    # Whatever the final dot's reply, the transaction is over: no RSET after it (it would be taken as
    # the next message's content once that message's DATA is on the wire).
    (done,) = await protocol.exchange(end + b"".join(then or ()), 1, timeout, owed=3 if then else 0)
    if done.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(done.code, done.message)
    return done.message


async def hold_end(client: aiosmtplib.SMTP, before_end: Awaitable[None]) -> None:
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
