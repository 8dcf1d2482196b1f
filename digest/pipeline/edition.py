"""The pipeline read top to bottom: gather → rank → render → write. The CLI only calls these."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.core.config import Settings, SourceSpec
from digest.core.errors import DigestError
from digest.core.model import Edition, Rendered, Variant
from digest.delivery import message
from digest.pipeline.gather import Gathered, gather
from digest.pipeline.rank import rank
from digest.pipeline.render import Renderer


@dataclass(frozen=True)
class Timings:
    gather: float
    rank: float
    render: float = 0.0


@dataclass(frozen=True)
class Made:
    """An edition with what it took to make it."""

    settings: Settings
    gathered: Gathered
    edition: Edition
    timings: Timings


@dataclass(frozen=True)
class Built:
    made: Made
    rendered: Rendered
    files: tuple[Path, ...] = field(default=())


def make(settings: Settings, day: date, sources: list[SourceSpec] | None = None) -> Made:
    tz = ZoneInfo(settings.newsletter.timezone)
    t0 = time.perf_counter()
    gathered = gather(
        list(sources if sources is not None else settings.sources),
        day,
        tz,
        timeout=settings.fetch_timeout_seconds,
        similarity=settings.ranking.title_similarity,
    )
    t1 = time.perf_counter()
    edition = rank(gathered.items, settings, day, settings.newsletter.timezone)
    t2 = time.perf_counter()
    return Made(settings, gathered, edition, Timings(t1 - t0, t2 - t1))


def edition_key(settings: Settings, day: date) -> str:
    """The ledger's and the Message-IDs' name for one day of one newsletter: the whole list id, so two
    newsletters sharing a database never share an edition (hashed if too long for the ledger)."""
    list_id = settings.newsletter.list_id
    if len(list_id) > 40:
        list_id = hashlib.sha256(list_id.encode()).hexdigest()[:16]
    return f"{list_id}-{day.isoformat()}"


def build(made: Made, out: Path, locale: str | None = None, to: str | None = None) -> Built:
    """Write digest.html, digest.txt and digest.eml for one variant (all rubrics) into ``out``."""
    settings = made.settings
    t0 = time.perf_counter()
    rendered = Renderer(settings).render(made.edition, Variant(locale=locale or settings.newsletter.locale))
    t1 = time.perf_counter()
    sender = message.parse_sender(settings.newsletter.sender)
    msg = message.build(
        rendered,
        sender=settings.newsletter.sender,
        to=to or sender.addr_spec,
        edition_key=edition_key(settings, made.edition.date),
        reply_to=settings.newsletter.reply_to,
        extra_headers={"List-Id": f"{settings.newsletter.name} <{settings.newsletter.list_id}>"},
    )
    files = (out / "digest.html", out / "digest.txt", out / "digest.eml")
    try:
        out.mkdir(parents=True, exist_ok=True)
        files[0].write_text(rendered.html, encoding="utf-8")
        files[1].write_text(rendered.text, encoding="utf-8")
        files[2].write_bytes(message.to_bytes(msg))
    except OSError as exc:
        raise DigestError(f"cannot write the edition to {out}: {exc.strerror or exc}", "choose another --out") from None
    page = publish_archive(made)
    if page is not None:
        files += (page,)
    timings = Timings(made.timings.gather, made.timings.rank, t1 - t0)
    return Built(Made(settings, made.gathered, made.edition, timings), rendered, files)


def publish_archive(made: Made) -> Path | None:
    """Write the edition's web page into the archive folder: the page each email's "view in your
    browser" link opens. Built-in defaults (no digest.toml) have no site to publish to: None."""
    if made.settings.path is None:
        return None
    from digest.pipeline.archive import write_page

    return write_page(made.settings, made.edition)
