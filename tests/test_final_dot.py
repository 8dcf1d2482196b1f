"""A message's final dot waits for the previous outcome's commit (transports/smtp.py, loop.SendLoop._one):
the commit runs while the next message is on the wire, yet a crash still leaves at most one message per
connection sent and unrecorded. A real aiosmtpd server on 127.0.0.1."""
from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy.exc import OperationalError

from digest.core.config import Smtp
from digest.delivery.transports.base import Envelope, Kind, WireMessage
from digest.delivery.transports.smtp import SmtpTransport

from support.ports import PATIENCE
from support.smtp import Recorder, SmtpServer

BODY = b"Subject: one\r\nTo: reader@example.com\r\n\r\n..a line that began with a dot\r\nthe end\r\n"


class Watching(Recorder):
    """Says when a recipient has been given: the client is then sending DATA and the body."""

    def __init__(self) -> None:
        super().__init__()
        self.rcpt_seen = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = await super().handle_RCPT(server, session, envelope, address, rcpt_options)
        self.rcpt_seen.set()
        return reply


def transport(port: int) -> SmtpTransport:
    return SmtpTransport(Smtp(host="127.0.0.1", port=port, tls="none", connections=1,
                              deadline_seconds=PATIENCE, timeout_seconds=PATIENCE))


def envelope(recipient: str) -> Envelope:
    return Envelope("news@example.com", recipient, recipient)


def test_a_message_goes_whole_once_the_outcome_before_it_is_committed():
    server = SmtpServer(Watching())
    try:
        async def main():
            smtp = transport(server.port)
            committed = asyncio.get_running_loop().create_future()
            sending = asyncio.create_task(smtp.send(envelope("a@example.com"), WireMessage(BODY), before_end=committed))
            await asyncio.to_thread(server.handler.rcpt_seen.wait, PATIENCE)
            committed.set_result(None)
            outcome = await sending
            await smtp.close()
            return outcome

        outcome = asyncio.run(main())
        assert outcome.kind is Kind.SENT
        [message] = server.handler.messages
        assert message.rcpt_tos == ["a@example.com"]
        assert b".a line that began with a dot\r\nthe end" in message.data  # undoubled by the server, whole
    finally:
        server.stop()


def test_a_failed_commit_before_it_means_the_message_is_never_delivered():
    """The previous outcome could not be committed: the connection is dropped before the final dot, the
    relay delivers nothing, and the database's error reaches the send loop (which stops the run)."""
    server = SmtpServer(Watching())
    try:
        async def main():
            smtp = transport(server.port)
            committed = asyncio.get_running_loop().create_future()
            sending = asyncio.create_task(smtp.send(envelope("lost@example.com"), WireMessage(BODY),
                                                    before_end=committed))
            await asyncio.to_thread(server.handler.rcpt_seen.wait, PATIENCE)
            committed.set_exception(OperationalError("UPDATE deliveries", {}, Exception("database is locked")))
            with pytest.raises(OperationalError):
                await sending
            # The same transport goes on, on a new connection: only this message arrives.
            after = await smtp.send(envelope("next@example.com"), WireMessage(BODY))
            await smtp.close()
            return after

        assert asyncio.run(main()).kind is Kind.SENT
        assert [m.rcpt_tos for m in server.handler.messages] == [["next@example.com"]]
    finally:
        server.stop()
