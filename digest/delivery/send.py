"""`digest send`, top to bottom: enqueue the day's edition (frozen once: its content, its variants, a
row per active reader due at their hour), then work as a worker on that edition until nothing is due
now, retrying what a 4xx deferred within the run; the summary says what the queue says. A dry run
renders and personalises every message without enqueuing anything; a test copy goes to one editor.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from digest.core.clock import Clock
from digest.core.config import Settings
from digest.core.model import Variant
from digest.delivery.compose import Composer
from digest.delivery.editions import WEEKLY, Editions, FrozenEdition, edition_key
from digest.delivery.enqueue import Enqueued, date_header, draft, enqueue, enqueue_week
from digest.delivery.loop import Report
from digest.delivery.personalize import Recipient, Template, new_slot
from digest.delivery.queue import Backlog, Claimed, Queue
from digest.delivery.rhythms import backlog, has_weekly_readers, keep_day, make_week
from digest.delivery.transports import Envelope, Outcome, Transport, open_transport
from digest.delivery.worker import Worker
from digest.pipeline import message
from digest.pipeline.edition import DayEdition
from digest.pipeline.render import Renderer
from subscribers.schema import subscribers
from subscribers.store import Store
from subscribers.tokens import TOKEN_LENGTH, Tokens

__all__ = ["DryRun", "Report", "Sender", "dry_run", "send_test_copy"]


class Sender:
    """One edition's send: its day's edition (gathered, or frozen in the database already)."""

    def __init__(self, settings: Settings, day_edition: DayEdition | None, store: Store, tokens: Tokens, *,
                 day: date | None = None, outbox: Path | None = None, clock: Clock | None = None,
                 replace: bool = False, progress: Callable[[int], None] | None = None,
                 on_start: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self.day_edition = day_edition
        self.day = day or (day_edition.edition.date if day_edition else date.today())
        self.store = store
        self.tokens = tokens
        self.clock = clock or Clock()
        self.replace = replace
        self.outbox = outbox
        self.progress = progress or (lambda n: None)
        self.on_start = on_start or (lambda due: None)  # told how many messages are due, once the queue knows
        self.slot = new_slot(TOKEN_LENGTH)  # the slot this send freezes the edition with, if it does
        self.edition = edition_key(settings.newsletter.list_id, self.day)
        self.transport = open_transport(settings, "", outbox)  # a missing password stops us here
        self._composer: tuple[object, Composer] | None = None
        self.worker: Worker | None = None
        self._enqueued_skipped: tuple[str, ...] = ()
        self.weekly: list[Enqueued] = []  # the week's edition and its parts, on a weekly day

    # -- the edition as it will go, for a dry run, a test copy and the tests ------------------------
    def frozen(self) -> FrozenEdition:
        """The day's edition as enqueued, else as it would be from what was gathered."""
        found = None if self.replace else Editions(self.store).open_edition(self.settings.newsletter.list_id, self.day)
        if found is not None:
            return found
        assert self.day_edition is not None, "nothing gathered and nothing enqueued"
        # As it would go: without the stories earlier editions carried (the store is only read).
        fresh, _ = keep_day(self.settings, self.store, self.day_edition, self.clock.now(), write=False)
        return draft(self.settings, fresh if fresh.edition.items else self.day_edition, self.slot, self.clock)

    @property
    def composer(self) -> Composer:
        source = self.day_edition
        if self._composer is None or self._composer[0] is not source:
            self._composer = (source, Composer(self.settings, self.frozen(), self.tokens))
        return self._composer[1]

    @property
    def renderer(self) -> Renderer:
        return self.composer.renderer

    @property
    def compiles(self) -> int:
        return self.composer.compiles + (self.worker.compiles if self.worker else 0)

    @property
    def skipped(self) -> list[str]:
        found = list(self.composer.skipped) if self._composer else []
        for item in [*self._enqueued_skipped, *(self.worker.skipped if self.worker else [])]:
            if item not in found:
                found.append(item)
        return found

    def variant(self, locale: str, rubrics: str) -> Variant:
        return self.composer.variant(locale, rubrics)

    def template(self, locale: str, rubrics: str) -> Template:
        return self.composer.template(locale, rubrics)

    def message_for(self, row: Claimed, wire: bool = False) -> bytes:
        """A reader's message: as stored (outbox, dry run), or `wire`-ready for SMTP's DATA."""
        return self.composer.compose(row.subscriber_id, row.email, row.name, row.locale, row.rubrics, wire)[0]

    def destination(self) -> str:
        return self.transport.where

    # -- the run ----------------------------------------------------------------------------------
    def enqueue(self) -> Enqueued:
        def prepare() -> DayEdition:
            assert self.day_edition is not None, "the edition is not enqueued and nothing was gathered"
            return self.day_edition

        return enqueue(self.settings, self.store, self.tokens, self.clock, self.day, prepare, self.replace, self.slot)

    def enqueue_week(self) -> list[Enqueued]:
        """On a weekly day, the week's edition for the weekly readers of that day (else nothing)."""
        self.weekly = enqueue_week(self.settings, self.store, self.tokens, self.clock, self.day)
        return self.weekly

    def week_composer(self) -> Composer | None:
        """The week's edition (as enqueued, else as the store would make it now), on a weekly day."""
        if not has_weekly_readers(self.settings, self.store, self.day):
            return None
        list_id = self.settings.newsletter.list_id
        found = Editions(self.store).open_edition(list_id, self.day, WEEKLY)
        if found is None:
            week = make_week(self.settings, self.store, self.day)
            if week is None:
                return None
            found = FrozenEdition(edition_key(list_id, self.day, rhythm=WEEKLY), list_id, self.day, 1, "draft",
                                  self.clock.now(), date_header(self.clock), self.slot, week.edition, WEEKLY)
        return Composer(self.settings, found, self.tokens)

    def week_keys(self) -> list[str]:
        """The week's edition and every part of it enqueued so far (earlier runs' too: a row of one
        may still be due), on a weekly day; none before the week is enqueued (a dry run's first)."""
        return Editions(self.store).week_keys(self.settings.newsletter.list_id, self.day)

    def backlog(self, daily: str | None) -> Backlog:
        """The day's edition and the week's (when this is a weekly day) together."""
        return backlog(Queue(self.store, self.clock), self.settings, self.day, daily,
                       self.week_keys())

    def run(self) -> Report:
        started = time.perf_counter()
        enqueued = self.enqueue()
        self.enqueue_week()
        key = enqueued.frozen.key
        before = self.backlog(key)
        added = enqueued.added + sum(w.added for w in self.weekly)
        report = Report(key, self.destination(), added=added, already_sent=before.sent,
                        due=before.due + before.in_flight)
        self.on_start(report.due)
        keys = [key, *self.week_keys()]
        self.worker = Worker(self.settings, self.store, self.tokens, self.clock, only=keys, outbox=self.outbox,
                             until_idle=True, report=report, progress=self.progress, transport=self.transport)
        try:
            if report.due:
                self.worker.run()
            else:
                report.settle()
        finally:
            after = self.backlog(key)
            report.left, report.waiting = after.unsent, after.waiting
            report.next_due, report.in_flight = after.next_due, after.in_flight
            report.variants = enqueued.rendered + sum(w.rendered for w in self.weekly) + self.worker.compiles
            report.elapsed = time.perf_counter() - started
            self._enqueued_skipped = enqueued.skipped
        return report


@dataclass(frozen=True)
class DryRun:
    messages: int
    bytes: int
    variants: Counter[Variant]  # readers per variant
    compiles: int
    elapsed: float
    backlog: Backlog  # what a real run started now would find


def dry_run(sender: Sender) -> DryRun:
    """Render every variant and personalise every message, send nothing and record nothing: the day's
    edition for daily readers, and on a weekly day the week (as the store holds it) for its readers."""
    started = time.perf_counter()
    count, size = 0, 0
    per_key: Counter[tuple[str, str]] = Counter()  # by the stored choice: no Variant built per subscriber
    week = sender.week_composer()
    weekly_day, today = sender.settings.delivery.weekly_day, sender.day.weekday()
    c = subscribers.c  # the columns a message needs, as rows: no Subscriber made, no rubrics split and joined again
    columns = (c.id, c.email, c.name, c.locale, c.rubrics, c.cadence, c.weekday)
    for id_, email, name, locale, rubrics, cadence, weekday in sender.store.iter_rows(columns, "active"):
        composer = sender.composer
        if cadence == "weekly":
            if week is None or (weekly_day if weekday is None else weekday) != today:
                continue
            composer = week
        size += len(composer.compose(id_, email, name, locale, rubrics).data)
        count += 1
        per_key[(locale, rubrics)] += 1
    per_variant: Counter[Variant] = Counter()
    for (locale, rubrics), n in per_key.items():
        per_variant[sender.variant(locale, rubrics)] += n
    backlog = sender.backlog(sender.composer.edition_key)
    compiles = sender.compiles + (week.compiles if week else 0)
    return DryRun(count, size, per_variant, compiles, time.perf_counter() - started, backlog)


def send_test_copy(sender: Sender, to: str, name: str = "") -> Outcome:
    """One copy of the all-rubrics edition to an editor's address; the queue is not touched. Test
    copies go beside the edition's outbox folder, never into it: that one holds exactly one message
    per subscriber."""
    template = sender.template(sender.settings.newsletter.locale, "")
    # A token that belongs to nobody: the test copy's unsubscribe link must not unsubscribe anyone.
    recipient = Recipient(0, to, name, "0" * len(template.placeholder), tag=sender.composer.nobody_tag())
    transport = open_transport(sender.settings, "", sender.outbox)
    data = sender.composer.finish(template, recipient, wire=transport.wire)
    envelope = Envelope(message.return_path(sender.settings), to, f"{sender.composer.edition_key}-test/{0:010d}")
    return asyncio.run(_send_one(transport, envelope, data))


async def _send_one(transport: Transport, envelope: Envelope, data: bytes) -> Outcome:
    try:
        return await transport.send(envelope, data)
    finally:
        await transport.close()
