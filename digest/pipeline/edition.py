"""The pipeline read top to bottom: gather → rank → render → write (`build`), and its two halves.

    prepare(settings, day)   the sources gathered, the day kept, its stories ranked: a DayEdition
    write(day_edition, out)  one variant rendered, written as digest.html, .txt and .eml, and the
                             edition's page put in the web archive: a WrittenEdition
    build(settings, day, out)    both, refusing an edition with no item in between

`digest send` prepares the day the same way and hands it to digest.delivery, which renders each
variant once and fills it per reader.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.core.config import Settings, SourceSpec
from digest.core.errors import DigestError
from digest.core.model import Edition, Rendered, Variant
from digest.pipeline import message
from digest.pipeline.archive import write_page
from digest.pipeline.gather import Gathered, gather
from digest.pipeline.rank import rank
from digest.pipeline.render import Renderer


@dataclass(frozen=True)
class Timings:
    gather: float
    rank: float
    render: float = 0.0


@dataclass(frozen=True)
class DayEdition:
    """The day's ranked edition, with what it took to make it: the gathering's report and the times."""

    settings: Settings
    gathered: Gathered
    edition: Edition
    timings: Timings


@dataclass(frozen=True)
class WrittenEdition:
    """An edition written out: the day it came from, the variant rendered, the files written."""

    day: DayEdition
    rendered: Rendered
    files: tuple[Path, ...] = field(default=())


def build(settings: Settings, day: date, out: Path, *, sources: list[SourceSpec] | None = None,
          locale: str | None = None, to: str | None = None,
          report: Callable[[Gathered], None] = lambda gathered: None) -> WrittenEdition:
    """The whole pipeline: gather → rank → render → write. ``report`` hears of the sources' warnings
    and failures as soon as they are known, before an empty edition is refused."""
    day_edition = prepare(settings, day, sources)
    report(day_edition.gathered)
    refuse_empty(day_edition, "nothing is written")
    return write(day_edition, out, locale, to)


def prepare(settings: Settings, day: date, sources: list[SourceSpec] | None = None) -> DayEdition:
    """Gather every source (the configured ones, or ``sources``), keep the day, rank it."""
    tz = ZoneInfo(settings.newsletter.timezone)
    t0 = time.perf_counter()
    gathered = gather(
        list(sources if sources is not None else settings.sources),
        day,
        tz,
        timeout=settings.fetch_timeout_seconds,
        similarity=settings.ranking.title_similarity,
        lang=settings.newsletter.locale.split("-", 1)[0],
    )
    t1 = time.perf_counter()
    edition = rank(gathered.items, settings, day, settings.newsletter.timezone)
    t2 = time.perf_counter()
    return DayEdition(settings, gathered, edition, Timings(t1 - t0, t2 - t1))


def refuse_empty(day_edition: DayEdition, consequence: str) -> None:
    """No reader wants an email with nothing in it: say why there is nothing instead."""
    if not day_edition.edition.items:
        gathered = day_edition.gathered
        what = "every source failed" if gathered.errors and not gathered.items else "the day has no items"
        raise DigestError(f"the edition has no items ({what}): {consequence}", "check the sources and --date")


def write(day_edition: DayEdition, out: Path, locale: str | None = None, to: str | None = None) -> WrittenEdition:
    """Write digest.html, digest.txt and digest.eml for one variant (all rubrics) into ``out``, and
    the edition's page into the web archive."""
    settings = day_edition.settings
    t0 = time.perf_counter()
    rendered = Renderer(settings).render(day_edition.edition, Variant(locale=locale or settings.newsletter.locale))
    t1 = time.perf_counter()
    sender = message.parse_sender(settings.newsletter.sender)
    msg = message.build(
        rendered,
        sender=settings.newsletter.sender,
        to=to or sender.addr_spec,
        edition_key=edition_key(settings, day_edition.edition.date),
        reply_to=settings.newsletter.reply_to,
        extra_headers={"List-Id": f"{settings.newsletter.name} <{settings.newsletter.list_id}>"},
    )
    files: tuple[Path, ...] = (out / "digest.html", out / "digest.txt", out / "digest.eml")
    try:
        out.mkdir(parents=True, exist_ok=True)
        files[0].write_text(rendered.html, encoding="utf-8")
        files[1].write_text(rendered.text, encoding="utf-8")
        files[2].write_bytes(message.to_bytes(msg))
    except OSError as exc:
        raise DigestError(f"cannot write the edition to {out}: {exc.strerror or exc}", "choose another --out") from None
    page = publish_archive(day_edition)
    if page is not None:
        files += (page,)
    timed = replace(day_edition, timings=replace(day_edition.timings, render=t1 - t0))
    return WrittenEdition(timed, rendered, files)


def edition_key(settings: Settings, day: date) -> str:
    """The ledger's and the Message-IDs' name for one day of one newsletter: the whole list id, so two
    newsletters sharing a database never share an edition (hashed if too long for the ledger)."""
    list_id = settings.newsletter.list_id
    if len(list_id) > 40:
        list_id = hashlib.sha256(list_id.encode()).hexdigest()[:16]
    return f"{list_id}-{day.isoformat()}"


def publish_archive(day_edition: DayEdition) -> Path | None:
    """Write the edition's web page into the archive folder: the page each email's "view in your
    browser" link opens. Built-in defaults (no digest.toml) have no site to publish to: None."""
    if day_edition.settings.path is None:
        return None
    return write_page(day_edition.settings, day_edition.edition)
