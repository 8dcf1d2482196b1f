"""Deliver an edition to every active subscriber: one render per variant, one message per reader,
one ledger row per (edition, subscriber), a bounded pool of connections, retries and suppression.

The run, top to bottom (`Sender.run`): lock the edition → add ledger rows for new subscribers →
put back what a killed run left in flight → render each variant once → stream the due rows,
personalise each message in microseconds, hand it to N workers → each worker records every outcome
as it happens → summary.
"""
from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy.exc import SQLAlchemyError

from digest.core.config import LOCALES, Settings
from digest.core.errors import LedgerError
from digest.core.model import Rendered, Variant
from digest.delivery import message
from digest.delivery.ledger import Due, EditionLock, Ledger, utcnow
from digest.delivery.personalize import Recipient, Template, new_slot
from digest.delivery.transports.smtp import Outbox, Outcome, SmtpConnection
from digest.pipeline.edition import Made, edition_key, publish_archive
from digest.pipeline.render import Renderer

# Headers a DKIM signature covers: Gmail and Yahoo want both List-Unsubscribe headers among them.
DKIM_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
                b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to"]


@dataclass
class Report:
    edition: str
    destination: str
    variants: int = 0
    due: int = 0
    added: int = 0  # ledger rows made in this run: subscribers new since the last run of this edition
    recovered: int = 0  # left in flight by a killed run, sent again
    already_sent: int = 0
    outcomes: Counter = field(default_factory=Counter)  # sent, deferred, failed
    bounced: int = 0
    retried: int = 0
    left: int = 0  # after the run: messages still owed (deferred, pending), for the next run
    next_due: datetime | None = None
    interrupted: bool = False
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        done = self.outcomes["sent"] + self.outcomes["failed"]
        return done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        return (not self.interrupted and not self.errors and not self.left
                and self.outcomes["deferred"] == 0 and self.outcomes["failed"] == 0)


@dataclass
class _Job:
    due: Due
    data: bytes
    message_id: str
    attempt: int = 1  # in this run


class Sender:
    def __init__(self, settings: Settings, made: Made, store, tokens, *, outbox=None,
                 progress: Callable[[int], None] | None = None,
                 on_start: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self.made = made
        self.store = store
        self.tokens = tokens
        self.edition = edition_key(settings, made.edition.date)
        from subscribers.tokens import TOKEN_LENGTH

        # This edition's own random slot: no source can know it, so no item can carry a reader's token.
        self.slot = new_slot(TOKEN_LENGTH)
        self.renderer = Renderer(settings, slot=self.slot)
        self.skipped: list[str] = []  # items a variant could not render, left out (printable)
        self.progress = progress or (lambda n: None)
        self.on_start = on_start or (lambda due: None)  # told how many messages are due, once the ledger knows
        self.outbox = outbox
        self.compiles = 0  # MJML compiles this run: one per variant, never one per recipient
        self._templates: dict[tuple[str, str], Template] = {}
        self._known = {r.key for r in settings.rubrics}
        self._stopping = False
        self._fatal: Exception | None = None
        self._interrupted = False
        self._date = message.now()
        if settings.smtp is not None and outbox is None:
            settings.smtp.resolve_password()  # a missing password is a configuration error now, not per message
        news = settings.newsletter
        self.envelope_from = (settings.smtp.envelope_from if settings.smtp and settings.smtp.envelope_from
                              else message.parse_sender(news.sender).addr_spec)

    # -- variants -----------------------------------------------------------------------------------
    def variant(self, locale: str, rubrics: str) -> Variant:
        chosen = frozenset(k for k in rubrics.split(",") if k in self._known)
        return Variant(locale if locale in LOCALES else self.settings.newsletter.locale, chosen or None)

    def template(self, locale: str, rubrics: str) -> Template:
        key = (locale, rubrics)
        if key not in self._templates:
            variant = self.variant(locale, rubrics)
            same = next((t for (l, r), t in self._templates.items() if self.variant(l, r) == variant), None)
            self._templates[key] = same or self._build_template(self.renderer.render(self.made.edition, variant))
        return self._templates[key]

    def _build_template(self, rendered: Rendered) -> Template:
        self.compiles += 1
        self.skipped += [item for item in rendered.skipped if item not in self.skipped]
        news = self.settings.newsletter
        from subscribers.tokens import TOKEN_LENGTH

        return Template(rendered, sender=news.sender, edition_key=self.edition, list_id=news.list_id,
                        list_name=news.name, base_url=news.base_url, token_length=TOKEN_LENGTH,
                        unsubscribe_mailto=news.unsubscribe_mailto, reply_to=news.reply_to, date=self._date)

    def message_for(self, due: Due, wire: bool = False) -> bytes:
        """The subscriber's message: as stored (outbox, dry run), or `wire`-ready for SMTP's DATA."""
        return self._message(due, wire)[0]

    def _message(self, due: Due, wire: bool) -> tuple[bytes, str]:
        """The message and its Message-ID, each made once per recipient."""
        template = self.template(due.locale, due.rubrics)
        message_id = template.message_id(due.email)
        recipient = Recipient(due.subscriber_id, due.email, due.name, self.tokens.make(due.subscriber_id), message_id)
        return self._finish(template, recipient, wire), message_id

    def _finish(self, template: Template, recipient: Recipient, wire: bool) -> bytes:
        if not self.settings.dkim:
            return template.fill_wire(recipient) if wire else template.fill(recipient)
        plain = template.fill(recipient)
        signature = self._signature(plain)  # signed over the message itself, never its dot-stuffed form
        return template.fill_wire(recipient, prefix=signature) if wire else signature + plain

    def _signature(self, data: bytes) -> bytes:
        import dkim

        dk = self.settings.dkim
        return dkim.sign(data, dk.selector.encode(), dk.domain.encode(), dk.key, include_headers=DKIM_HEADERS,
                         linesep=b"\r\n")

    # -- the run --------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Take nothing new; what is in flight finishes and is recorded."""
        self._stopping = True

    def interrupt(self) -> None:
        """SIGINT/SIGTERM."""
        self._interrupted = True
        self.stop()

    def destination(self) -> str:
        smtp = self.settings.smtp
        if self.outbox is not None or smtp is None:
            return f"outbox {self._outbox().folder}"
        return f"smtp {smtp.host}:{smtp.port} ({smtp.tls}, {smtp.connections} connections)"

    def _outbox(self) -> Outbox:
        return Outbox(self.outbox or self.settings.delivery.outbox, self.edition)

    def run(self) -> Report:
        publish_archive(self.made)  # the page the messages' "view in your browser" link opens
        with EditionLock(self.settings.database, self.edition):
            return asyncio.run(self._run())

    async def _run(self) -> Report:
        report = Report(self.edition, self.destination())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.interrupt)
        ledger = Ledger(self.store.engine, self.edition)
        started = time.perf_counter()
        try:
            report.added = ledger.prepare()
            report.recovered = ledger.recover()
            report.already_sent = ledger.counts()["sent"]
            report.due = ledger.due_count()
            self.on_start(report.due)
            if report.due:  # nothing due: no variant is rendered for nothing
                for locale, rubrics in self.store.variants():
                    self.template(locale, ",".join(sorted(rubrics)))
                await self._deliver(ledger, report)
            report.variants = self.compiles
            backlog = ledger.backlog()
            report.left, report.next_due = backlog.owed, backlog.next_due
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            ledger.close()
            report.elapsed = time.perf_counter() - started
            report.interrupted = self._interrupted
        return report

    async def _deliver(self, ledger: Ledger, report: Report) -> None:
        smtp = self.settings.smtp
        use_outbox = self.outbox is not None or smtp is None
        workers = 1 if use_outbox else smtp.connections
        queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=workers * 8)
        retries_pending = 0
        retry_done = asyncio.Event()
        limiter = _RateLimiter(0 if use_outbox else smtp.rate)
        delivery = self.settings.delivery
        outbox = self._outbox() if use_outbox else None

        async def retry_later(job: _Job, delay: float) -> None:
            nonlocal retries_pending
            try:
                await asyncio.sleep(delay)
                if not self._stopping:
                    job.attempt += 1
                    await queue.put(job)
            finally:
                retries_pending -= 1
                retry_done.set()

        # Deferred in the ledger with a retry to come in this run; any still here at the end (the run
        # stopped first) is counted as deferred, so that the summary says what the ledger says.
        awaiting_retry: set[int] = set()

        def record(job: _Job, outcome: Outcome) -> None:
            nonlocal retries_pending
            sid = job.due.subscriber_id
            awaiting_retry.discard(sid)
            if outcome.fatal:
                # Nothing can go this way: keep this message due at once and stop taking new ones.
                ledger.deferred(sid, outcome.code, outcome.message, utcnow())
                if outcome.message not in report.errors:
                    report.errors.append(outcome.message)
                self.stop()
                report.outcomes["deferred"] += 1
                return
            if outcome.kind == "sent":
                ledger.sent(sid, outcome.code)
            elif outcome.kind == "failed":
                ledger.failed(sid, outcome.code, outcome.message, bounce=outcome.bounce)
                report.bounced += outcome.bounce
            elif job.attempt < delivery.retries and not self._stopping:
                delay = delivery.retry_base_seconds * 2 ** (job.attempt - 1) * random.uniform(0.5, 1.5)
                ledger.deferred(sid, outcome.code, outcome.message, utcnow() + timedelta(seconds=delay))
                retries_pending += 1
                report.retried += 1
                awaiting_retry.add(sid)
                asyncio.create_task(retry_later(job, delay))
                return
            else:
                ledger.deferred(sid, outcome.code, outcome.message, ledger.later(delivery.retry_later_minutes))
            report.outcomes[outcome.kind] += 1
            self.progress(1)

        async def worker() -> None:
            connection = None if use_outbox else SmtpConnection(smtp, delivery.retries, delivery.retry_base_seconds)
            try:
                while True:
                    job = await queue.get()
                    try:
                        if job is None:
                            return
                        if self._stopping:
                            continue  # left pending (or deferred) in the ledger for the next run
                        await limiter.wait()
                        try:
                            ledger.sending(job.due.subscriber_id, job.message_id)
                            if outbox is not None:
                                outcome = await outbox.send(self.envelope_from, job.due.email, job.data, job.due.subscriber_id)
                            else:
                                outcome = await connection.send(self.envelope_from, job.due.email, job.data)
                            record(job, outcome)
                        except SQLAlchemyError as exc:
                            # The ledger cannot be written (a locked or full database): sending on
                            # without recording could double a reader, so the whole run stops here.
                            self._fatal = self._fatal or exc
                            self.stop()
                    finally:
                        queue.task_done()
            finally:
                if connection is not None:
                    await connection.close()

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        try:
            for due in ledger.due():
                if self._stopping:
                    break
                data, message_id = self._message(due, wire=not use_outbox)
                await queue.put(_Job(due, data, message_id))
            # Done when every job has been handled and no retry is waiting to be queued again (a
            # retry is queued before it stops counting as pending, so join() then covers it).
            while True:
                await queue.join()
                if not retries_pending or self._stopping:
                    break
                retry_done.clear()
                await retry_done.wait()
        finally:
            for _ in tasks:
                await queue.put(None)
            await asyncio.gather(*tasks)
        if awaiting_retry:
            report.outcomes["deferred"] += len(awaiting_retry)
            self.progress(len(awaiting_retry))
        if self._fatal is not None:
            raise LedgerError(
                f"the ledger in {self.settings.database} could not be written: {self._fatal.__class__.__name__}: "
                f"{str(self._fatal).splitlines()[0]}",
                "nothing more was sent; fix the database and run `digest send` again to finish",
            )


class _RateLimiter:
    """At most `rate` messages per second over all connections (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            if self.next > now:
                await asyncio.sleep(self.next - now)
            self.next = max(now, self.next) + self.interval


def dry_run(sender: Sender) -> dict:
    """Render every variant and personalise every message, send nothing and record nothing."""
    started = time.perf_counter()
    count, size = 0, 0
    per_key: Counter = Counter()  # by the stored (locale, rubrics): no Variant built per subscriber
    for subscriber in sender.store.iter_subscribers(status="active"):
        rubrics = ",".join(sorted(subscriber.rubrics))
        data = sender.message_for(Due(subscriber.id, subscriber.email, subscriber.name, subscriber.locale, rubrics, 0))
        count += 1
        size += len(data)
        per_key[(subscriber.locale, rubrics)] += 1
    per_variant: Counter = Counter()
    for (locale, rubrics), n in per_key.items():
        per_variant[sender.variant(locale, rubrics)] += n
    backlog = Ledger(sender.store.engine, sender.edition).read(Ledger.backlog)
    return {"messages": count, "bytes": size, "variants": per_variant, "compiles": sender.compiles,
            "elapsed": time.perf_counter() - started, "backlog": backlog}


async def _send_one(sender: Sender, to: str, data: bytes) -> Outcome:
    if sender.outbox is not None or sender.settings.smtp is None:
        # Test copies go beside the edition's folder, never into it: the edition's folder holds
        # exactly one message per subscriber.
        test_box = Outbox(sender.outbox or sender.settings.delivery.outbox, f"{sender.edition}-test")
        return await test_box.send(sender.envelope_from, to, data, 0)
    delivery = sender.settings.delivery
    connection = SmtpConnection(sender.settings.smtp, delivery.retries, delivery.retry_base_seconds)
    try:
        return await connection.send(sender.envelope_from, to, data)
    finally:
        await connection.close()


def send_test_copy(sender: Sender, to: str, name: str = "") -> Outcome:
    """One copy of the all-rubrics edition to an editor's address; the ledger is not touched."""
    locale = sender.settings.newsletter.locale
    template = sender.template(locale, "")
    # A token that belongs to nobody: the test copy's unsubscribe link must not unsubscribe anyone.
    recipient = Recipient(0, to, name, "0" * len(template.placeholder))
    to_outbox = sender.outbox is not None or sender.settings.smtp is None
    return asyncio.run(_send_one(sender, to, sender._finish(template, recipient, wire=not to_outbox)))
