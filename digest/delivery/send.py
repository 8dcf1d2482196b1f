"""Deliver an edition to every active subscriber: one render per variant, one message per reader,
one ledger row per (edition, subscriber), through whichever transport digest.toml chose.

The run, top to bottom (`Sender.run`): publish the edition's web page → lock the edition → add
ledger rows for new subscribers → put back what a killed run left in flight → if anything is due,
render each variant once and stream the due rows, each message personalised in microseconds, into
the send loop, which records every outcome as it happens → the summary.
"""
from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from digest.core.config import Settings
from digest.core.errors import LedgerError
from digest.core.model import Variant
from digest.delivery.compose import Composer
from digest.delivery.ledger import Backlog, Due, Ledger
from digest.delivery.lock import EditionLock
from digest.delivery.loop import Job, Report, RetryPolicy, SendLoop
from digest.delivery.personalize import Recipient, Template
from digest.delivery.transports import Envelope, Outcome, Transport, open_transport
from digest.pipeline import message
from digest.pipeline.edition import DayEdition, edition_key, publish_archive
from digest.pipeline.render import Renderer
from subscribers.store import Store, join_rubrics
from subscribers.tokens import Tokens

__all__ = ["DryRun", "Report", "Sender", "dry_run", "send_test_copy"]


class Sender:
    def __init__(self, settings: Settings, day_edition: DayEdition, store: Store, tokens: Tokens, *,
                 outbox: Path | None = None, progress: Callable[[int], None] | None = None,
                 on_start: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self.day_edition = day_edition
        self.store = store
        self.edition = edition_key(settings, day_edition.edition.date)
        self.composer = Composer(settings, day_edition.edition, self.edition, tokens)
        self.outbox = outbox  # --outbox: this folder, whatever digest.toml says
        self.progress = progress or (lambda n: None)
        self.on_start = on_start or (lambda due: None)  # told how many messages are due, once the ledger knows
        self.transport = open_transport(settings, self.edition, outbox)  # a missing password stops us here
        news = settings.newsletter
        self.envelope_from = (settings.smtp.envelope_from if settings.smtp and settings.smtp.envelope_from
                              else message.parse_sender(news.sender).addr_spec)
        self._loop: SendLoop | None = None
        self._interrupted = False

    # What composes the messages, as the editors' tools and the tests look at it.
    @property
    def slot(self) -> str:
        return self.composer.slot

    @property
    def renderer(self) -> Renderer:
        return self.composer.renderer

    @property
    def compiles(self) -> int:
        return self.composer.compiles

    @property
    def skipped(self) -> list[str]:
        return self.composer.skipped

    def variant(self, locale: str, rubrics: str) -> Variant:
        return self.composer.variant(locale, rubrics)

    def template(self, locale: str, rubrics: str) -> Template:
        return self.composer.template(locale, rubrics)

    def message_for(self, due: Due, wire: bool = False) -> bytes:
        """The subscriber's message: as stored (outbox, dry run), or `wire`-ready for SMTP's DATA."""
        return self.composer.compose(due.subscriber_id, due.email, due.name, due.locale, due.rubrics, wire)[0]

    def destination(self) -> str:
        return self.transport.where

    # -- the run ----------------------------------------------------------------------------------
    def interrupt(self) -> None:
        """SIGINT/SIGTERM: take nothing new; what is in flight finishes and is recorded."""
        self._interrupted = True
        if self._loop is not None:
            self._loop.stop()

    def run(self) -> Report:
        publish_archive(self.day_edition)  # the page the messages' "view in your browser" link opens
        with EditionLock(self.settings.database, self.edition):
            return asyncio.run(self._run())

    async def _run(self) -> Report:
        report = Report(self.edition, self.destination())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.interrupt)
        ledger = Ledger(self.store, self.edition)
        started = time.perf_counter()
        try:
            report.added = ledger.prepare()
            report.recovered = ledger.recover()
            report.already_sent = ledger.counts()["sent"]
            report.due = ledger.due_count()
            self.on_start(report.due)
            if report.due and not self._interrupted:  # nothing due: no variant is rendered for nothing
                for locale, rubrics in self.store.variants():
                    self.composer.template(locale, join_rubrics(rubrics))
                await self._deliver(ledger, report)
            report.variants = self.composer.compiles
            backlog = ledger.backlog()
            report.left, report.next_due = backlog.owed, backlog.next_due
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            ledger.close()
            await self.transport.close()
            report.elapsed = time.perf_counter() - started
            report.interrupted = self._interrupted
        return report

    async def _deliver(self, ledger: Ledger, report: Report) -> None:
        self._loop = send_loop = SendLoop(self.transport, ledger, RetryPolicy.of(self.settings.delivery), report,
                                          self.progress)
        if self._interrupted:
            send_loop.stop()
        await send_loop.run(self._jobs(ledger))
        if send_loop.fatal is not None:
            raise LedgerError(
                f"the ledger in {self.settings.database} could not be written: {send_loop.fatal.__class__.__name__}: "
                f"{str(send_loop.fatal).splitlines()[0]}",
                "nothing more was sent; fix the database and run `digest send` again to finish",
            )

    def _jobs(self, ledger: Ledger) -> Iterator[Job]:
        """The due rows in subscriber order, each with its message made as it is taken."""
        wire = self.transport.wire
        for due in ledger.due():
            data, message_id = self.composer.compose(due.subscriber_id, due.email, due.name, due.locale,
                                                     due.rubrics, wire)
            envelope = Envelope(self.envelope_from, due.email, f"{due.subscriber_id:010d}")
            yield Job(due, envelope, data, message_id)


@dataclass(frozen=True)
class DryRun:
    messages: int
    bytes: int
    variants: Counter[Variant]  # readers per variant
    compiles: int
    elapsed: float
    backlog: Backlog  # what a real run started now would find


def dry_run(sender: Sender) -> DryRun:
    """Render every variant and personalise every message, send nothing and record nothing."""
    started = time.perf_counter()
    count, size = 0, 0
    per_key: Counter[tuple[str, str]] = Counter()  # by the stored choice: no Variant built per subscriber
    for subscriber in sender.store.iter_subscribers(status="active"):
        rubrics = join_rubrics(subscriber.rubrics)
        data, _ = sender.composer.compose(subscriber.id, subscriber.email, subscriber.name, subscriber.locale, rubrics)
        count += 1
        size += len(data)
        per_key[(subscriber.locale, rubrics)] += 1
    per_variant: Counter[Variant] = Counter()
    for (locale, rubrics), n in per_key.items():
        per_variant[sender.variant(locale, rubrics)] += n
    backlog = Ledger(sender.store, sender.edition).read(Ledger.backlog)
    return DryRun(count, size, per_variant, sender.compiles, time.perf_counter() - started, backlog)


def send_test_copy(sender: Sender, to: str, name: str = "") -> Outcome:
    """One copy of the all-rubrics edition to an editor's address; the ledger is not touched. Test
    copies go beside the edition's outbox folder, never into it: that one holds exactly one message
    per subscriber."""
    template = sender.template(sender.settings.newsletter.locale, "")
    # A token that belongs to nobody: the test copy's unsubscribe link must not unsubscribe anyone.
    recipient = Recipient(0, to, name, "0" * len(template.placeholder))
    transport = open_transport(sender.settings, f"{sender.edition}-test", sender.outbox)
    data = sender.composer.finish(template, recipient, wire=transport.wire)
    return asyncio.run(_send_one(transport, Envelope(sender.envelope_from, to, f"{0:010d}"), data))


async def _send_one(transport: Transport, envelope: Envelope, data: bytes) -> Outcome:
    try:
        return await transport.send(envelope, data)
    finally:
        await transport.close()
