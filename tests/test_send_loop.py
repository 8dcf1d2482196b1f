"""The send loop when the ledger cannot be written halfway (a database locked or full): the run stops,
and every row it held goes back to the queue, those it claimed meanwhile included; nothing is left
leased to a worker that has finished. A real queue (SQLite), a real relay (aiosmtpd offering
PIPELINING); only the outcome writes fail, from the chosen one on."""
from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from digest.core.config import Smtp
from digest.delivery.loop import Report, RetryPolicy, SendLoop
from digest.delivery.queue import Claimed, Queue
from digest.delivery.schema import deliveries
from digest.delivery.transports.base import WireMessage
from digest.delivery.transports.smtp import SmtpTransport

from support.newsroom import Newsroom
from support.ports import PATIENCE
from support.smtp import Recorder, SmtpServer


class FailingLedger(Queue):
    """A real queue whose outcome writes fail from the `after`+1-th group on; `failed` is set then."""

    def __init__(self, *args, after: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.after, self.groups = after, 0
        self.failed = asyncio.Event()

    async def record(self, entries) -> None:
        self.groups += 1
        if self.groups > self.after:
            self.failed.set()
            raise OperationalError("UPDATE deliveries", {}, Exception("database is locked"))
        await super().record(entries)


def compose(row: Claimed) -> tuple[bytes, str, str]:
    return WireMessage(b"Subject: today\r\n\r\nthe edition\r\n"), f"<{row.subscriber_id}@test>", "news@example.com"


async def no_rate() -> None:
    """The relay's pace without a rate: no wait."""


def test_a_ledger_that_fails_mid_run_gets_back_every_row_held_even_those_claimed_meanwhile(tmp_path):
    server = SmtpServer(Recorder(pipelining=True))
    room = Newsroom(tmp_path, subscribers=16)
    try:
        assert room.cli("send", "--enqueue-only").returncode == 0
        queue = FailingLedger(room.store, after=3)

        async def main() -> tuple[list[Claimed], SendLoop]:
            async def more() -> list[Claimed]:
                await queue.failed.wait()  # the next batch is being claimed when the ledger fails
                return await asyncio.to_thread(queue.claim, 6)

            transport = SmtpTransport(Smtp(host="127.0.0.1", port=server.port, tls="none", connections=1,
                                           deadline_seconds=PATIENCE, timeout_seconds=PATIENCE))
            loop = SendLoop(transport, queue, RetryPolicy(3, 1, 1), Report("e", "d"), compose, no_rate)
            try:
                return await loop.run(queue.claim(6), 1, more), loop
            finally:
                await transport.close()

        back, loop = asyncio.run(main())
        assert isinstance(loop.fatal, OperationalError)
        with room.store.engine.connect() as conn:
            leased = set(conn.execute(select(deliveries.c.subscriber_id).where(deliveries.c.status == "leased")).scalars())
        given_back = {row.subscriber_id for row in back}
        assert len(given_back) == 2 + 6  # the second batch, claimed while the run stopped, among them
        # Every row still leased was given back (the worker releases them), but for the one message
        # delivered whose outcome could not be written: it waits for its lease, to be sent again.
        unrecorded = leased - given_back
        assert len(unrecorded) == 1
        delivered = {room.store.get(rcpt).id for message in server.handler.messages for rcpt in message.rcpt_tos}
        assert unrecorded <= delivered and not given_back & delivered
        with room.store.engine.connect() as conn:
            sent = set(conn.execute(select(deliveries.c.subscriber_id).where(deliveries.c.status == "sent")).scalars())
        assert len(sent) == 3 and delivered == sent | unrecorded
    finally:
        server.stop()
        room.store.close()
