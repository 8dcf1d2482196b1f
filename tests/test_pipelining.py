"""A connection's next message starts with this one's end (RFC 2920 §3.1: a message's content may begin
a group of pipelined commands, and DATA ends it): its MAIL, RCPT and DATA go in the same write as the
final dot, and a message costs one round trip, not two. Each reply still belongs to its own message.
A real aiosmtpd server on 127.0.0.1, offering PIPELINING as Postfix does."""
from __future__ import annotations

import asyncio

import pytest

from digest.core.config import Smtp
from digest.delivery.transports.base import Envelope, Kind, Outcome, WireMessage
from digest.delivery.transports.smtp import SmtpTransport

from support.ports import PATIENCE
from support.smtp import Recorder, SmtpServer, Tap


def body(name: str) -> WireMessage:
    return WireMessage(b"Subject: " + name.encode() + b"\r\n\r\n..a line that began with a dot\r\n" + name.encode() + b"\r\n")


def envelope(name: str) -> Envelope:
    return Envelope("news@example.com", f"{name}@example.com", name)


def transport(port: int, **options) -> SmtpTransport:
    return SmtpTransport(Smtp(host="127.0.0.1", port=port, tls="none", deadline_seconds=PATIENCE,
                              timeout_seconds=PATIENCE, **{"connections": 1, **options}))


async def send_in_turn(smtp: SmtpTransport, names: list[str]) -> list[Outcome]:
    """As a task of the send loop does: each message announces the next, which is sent next."""
    outcomes = []
    for name, after in zip(names, [*names[1:], None], strict=True):
        then = (envelope(after), body(after)) if after is not None else None
        outcomes.append(await smtp.send(envelope(name), body(name), then=then))
    await smtp.close()
    return outcomes


@pytest.fixture
def relay():
    server = SmtpServer(Recorder(pipelining=True))
    try:
        yield server
    finally:
        server.stop()


def test_the_next_envelope_goes_with_the_final_dot_and_every_message_arrives_whole(relay):
    tap = Tap(relay.port)
    try:
        outcomes = asyncio.run(send_in_turn(transport(tap.port), ["a", "b", "c"]))
        # b's MAIL reached the server before the server answered a's final dot: one round trip.
        assert tap.first("client", b"MAIL FROM:<news@example.com> SIZE=") < tap.first("server", b"Ok: queued")
        assert tap.first("client", b"RCPT TO:<b@example.com>") < tap.first("server", b"Ok: queued")
    finally:
        tap.stop()
    assert [o.kind for o in outcomes] == [Kind.SENT] * 3
    assert relay.handler.sessions == 1
    received = relay.handler.messages
    assert [m.rcpt_tos for m in received] == [["a@example.com"], ["b@example.com"], ["c@example.com"]]
    for message, name in zip(received, "abc", strict=True):
        assert message.data.endswith(b"\r\n\r\n.a line that began with a dot\r\n" + name.encode() + b"\r\n")


def test_the_connection_s_last_message_announces_nothing(relay):
    """messages_per_connection: the message that ends a connection does not start the next on it."""
    outcomes = asyncio.run(send_in_turn(transport(relay.port, messages_per_connection=2), ["a", "b", "c", "d", "e"]))
    assert [o.kind for o in outcomes] == [Kind.SENT] * 5
    assert relay.handler.sessions == 3
    assert sorted(r for m in relay.handler.messages for r in m.rcpt_tos) == [f"{n}@example.com" for n in "abcde"]


def test_a_refused_final_dot_is_that_message_s_and_the_next_goes_on(relay):
    relay.handler.data_replies = ["554 5.6.0 Message refused", None]
    outcomes = asyncio.run(send_in_turn(transport(relay.port), ["a", "b", "c"]))
    assert [(o.kind, o.code) for o in outcomes] == [(Kind.FAILED, 554), (Kind.SENT, 250), (Kind.SENT, 250)]
    assert not outcomes[0].bounce
    assert [m.rcpt_tos for m in relay.handler.messages] == [["b@example.com"], ["c@example.com"]]
    assert relay.handler.sessions == 1  # no RSET after a final dot, and no reconnection


def test_a_refusal_of_an_announced_recipient_is_that_message_s(relay):
    relay.handler.rcpt["b@example.com"] = ["550 5.1.1 No such user"]
    relay.handler.rcpt["c@example.com"] = ["451 4.7.1 Greylisted, try again"]
    outcomes = asyncio.run(send_in_turn(transport(relay.port), ["a", "b", "c", "d"]))
    assert [o.kind for o in outcomes] == [Kind.SENT, Kind.FAILED, Kind.DEFERRED, Kind.SENT]
    assert outcomes[1].bounce and outcomes[1].code == 550
    assert outcomes[2].code == 451
    assert [m.rcpt_tos for m in relay.handler.messages] == [["a@example.com"], ["d@example.com"]]


def test_421_after_a_final_dot_drops_the_announced_message_and_it_goes_on_a_new_connection(relay):
    relay.handler.data_replies = [None, "421 4.3.2 Shutting down", None]
    outcomes = asyncio.run(send_in_turn(transport(relay.port), ["a", "b", "c", "d"]))
    assert [o.kind for o in outcomes] == [Kind.SENT, Kind.DEFERRED, Kind.SENT, Kind.SENT]
    assert [m.rcpt_tos for m in relay.handler.messages] == [["a@example.com"], ["c@example.com"], ["d@example.com"]]
    assert relay.handler.sessions == 2


@pytest.mark.parametrize("how", ["withdraw", "close"])
def test_an_announced_message_that_is_not_sent_is_never_delivered(relay, how):
    """The loop stopped after a's end had announced b: b's DATA is open on the server, and what closes
    it (a QUIT) would be taken for its content. The connection is dropped instead: b never arrives,
    and the transport goes on with a fresh connection."""
    async def main(port: int):
        smtp = transport(port)
        first = await smtp.send(envelope("a"), body("a"), then=(envelope("b"), body("b")))
        if how == "withdraw":
            smtp.withdraw(envelope("b"))
        else:
            await smtp.close()
        after = await smtp.send(envelope("c"), body("c"))
        await smtp.close()
        return first, after

    tap = Tap(relay.port)
    try:
        first, after = asyncio.run(main(tap.port))
    finally:
        tap.stop()
    dropped = tap.sent("client", 0)
    assert dropped.endswith(b"RCPT TO:<b@example.com>\r\nDATA\r\n")  # nothing after b's DATA, no QUIT
    assert tap.sent("client", 1).endswith(b"QUIT\r\n")  # the next connection ends politely
    assert first.kind is Kind.SENT and after.kind is Kind.SENT
    assert [m.rcpt_tos for m in relay.handler.messages] == [["a@example.com"], ["c@example.com"]]
    assert relay.handler.sessions == 2


def test_an_announced_message_whose_connection_was_lost_goes_whole_on_a_new_one(relay):
    """The connection holding b's envelope is gone before b is sent (the relay hung up): b is not
    read as announced on the new connection (no reply to it would ever come), but sent from its MAIL."""
    async def main():
        smtp = transport(relay.port)
        first = await smtp.send(envelope("a"), body("a"), then=(envelope("b"), body("b")))
        holding = smtp._announced["b"]
        assert holding.client is not None
        holding.client.close()  # as when the relay hangs up
        second = await smtp.send(envelope("b"), body("b"))
        await smtp.close()
        return first, second

    first, second = asyncio.run(main())
    assert first.kind is Kind.SENT and second.kind is Kind.SENT
    assert [m.rcpt_tos for m in relay.handler.messages] == [["a@example.com"], ["b@example.com"]]
    assert relay.handler.sessions == 2
