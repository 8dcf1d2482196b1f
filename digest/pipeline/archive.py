"""The web archive: an edition's web page (rendered from the Edition, never from the email), the
folder of those pages, and the Jinja environment every public web page (`digest serve`) shares.

A page is `<archive folder>/YYYY-MM-DD.html`: the page every email's "view in your browser" link
points to, and where an article with no URL of its own (a page-dump feature) has its full text, at
`#a-<item id>`. Feed text reaches it only as escaped text (Jinja autoescape) and links only as
http(s) URLs, so nothing a feed says can run in the reader's browser.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale

from digest.core.config import LOCALES, Settings
from digest.core.errors import DigestError
from digest.core.model import Edition, Ranked
from digest.pipeline import i18n
from digest.pipeline.typography import language, typeset

PAGE_NAME = re.compile(r"(week-)?(\d{4}-\d{2}-\d{2})\.html")  # a day's page, or a week's (by its last day)
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f\"<>\\`]")
# An edition's page is some hundred KiB; a file far larger is not one digest wrote, and `digest serve`
# reads a page whole into memory.
MAX_PAGE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One brief or article as the web page shows it: text only, links checked."""

    id: str
    kind: str
    title: str
    url: str | None  # http(s) only; None when the item has none (its full text is on this page)
    time: str
    paragraphs: tuple[str, ...]
    rubric: str
    rubric_label: str
    author: str | None
    image_url: str | None
    image_alt: str
    lang: str | None = None  # set when the item's language is not the page's
    dir: str | None = None


@dataclass(frozen=True)
class SectionEntries:
    key: str
    label: str
    entries: tuple[Entry, ...]


def web_url(url: str | None) -> str | None:
    """A link the page may carry: http or https, with no white space, quote or control character."""
    if not url or not url.startswith(("https://", "http://")) or _UNSAFE_URL.search(url):
        return None
    return url


def image_url(url: str | None) -> str | None:
    """Images load over https only (the page's Content-Security-Policy allows no other source)."""
    url = web_url(url)
    if url and url.startswith("http://"):
        url = "https://" + url[len("http://"):]
    return url


@cache
def _environment(theme: Path | None, locale: str) -> jinja2.Environment:
    return i18n.environment(theme, locale)


def render_page(settings: Settings, name: str, locale: str, **context: Any) -> str:
    """Render templates/web/NAME in a locale; a broken override is named with its line."""
    locale = locale if language(locale) in LOCALES else settings.newsletter.locale
    env = _environment(settings.theme, locale)
    base = {
        "newsletter": settings.newsletter,
        "newsletter_name": typeset(settings.newsletter.name, locale),
        "lang": locale,
        "dir": i18n.direction(locale),
    }
    try:
        return env.get_template(f"web/{name}").render({**base, **context})
    except jinja2.TemplateSyntaxError as exc:
        raise DigestError(f"{exc.filename or name}, line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise DigestError(f"web/{name}: {exc}", "check the template against the built-in one") from None


def stylesheet(settings: Settings) -> str:
    """The pages' one stylesheet, with a class per rubric for its colour (no inline style anywhere:
    the Content-Security-Policy allows none)."""
    env = _environment(settings.theme, settings.newsletter.locale)
    return env.get_template("web/style.css.j2").render(rubrics=settings.rubrics)


def language_name(locale: str) -> str:
    name = Locale.parse(locale).get_display_name(locale) or locale
    return name[:1].upper() + name[1:]


# -- the edition's page -------------------------------------------------------------------------------

def _entry(ranked: Ranked, settings: Settings, locale: str, tz: ZoneInfo) -> Entry:
    item = ranked.item
    rubric = settings.rubric(ranked.rubric)
    paragraphs = item.body if item.kind == "article" and item.body else ((item.summary,) if item.summary else ())
    lang = item.lang or locale
    other = language(lang) != language(locale)
    return Entry(
        id=item.id,
        kind=item.kind,
        title=typeset(item.title, lang),
        url=web_url(item.url),
        time=item.published.astimezone(tz).strftime("%H:%M") if item.timed else "",
        paragraphs=tuple(typeset(p, lang) for p in paragraphs if p),
        rubric=rubric.key,
        rubric_label=typeset(rubric.label_for(locale), locale),
        author=typeset(item.author, lang) if item.author else None,
        image_url=image_url(item.image.url) if item.image else None,
        image_alt=typeset(item.image.alt, lang) if item.image else "",
        lang=lang if other else None,
        dir=i18n.direction(lang) if other else None,
    )


def edition_page(settings: Settings, edition: Edition) -> str:
    """The edition's web page, in the newsletter's language, with every item of the day."""
    locale = settings.newsletter.locale
    tz = ZoneInfo(edition.timezone)
    sections = [
        SectionEntries(s.rubric, typeset(settings.rubric(s.rubric).label_for(locale), locale),
                       tuple(_entry(r, settings, locale, tz) for r in s.items))
        for s in edition.sections
        if s.items
    ]
    return render_page(
        settings,
        "edition.html.j2",
        locale,
        date=edition.date,
        date_long=i18n.edition_date(edition, locale, settings.theme),
        leads=[_entry(r, settings, locale, tz) for r in edition.leads],
        sections=sections,
        more=[_entry(r, settings, locale, tz) for r in edition.more],
        # Relative links: the page works wherever the archive folder is served from.
        css_href="../static/digest.css",
        index_href="./",
    )


def page_name(day: date, weekly: bool = False) -> str:
    """`2026-11-29.html`, and the week that ends that day: `week-2026-11-29.html`."""
    return ("week-" if weekly else "") + f"{day.isoformat()}.html"


def page_path(settings: Settings, day: date, weekly: bool = False) -> Path:
    return settings.archive / page_name(day, weekly)


def write_page(settings: Settings, edition: Edition) -> Path:
    """Write (or replace) the edition's page atomically: `digest serve` never shows half a page."""
    path = page_path(settings, edition.date, edition.weekly)
    html = edition_page(settings, edition)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(html)
            os.chmod(temporary, 0o644)  # served to the public: no need for mkstemp's 0600
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise DigestError(f"cannot write the web archive page {path}: {exc.strerror or exc}",
                          "check `folder` in the [archive] table of digest.toml") from None
    return path


def editions(folder: Path, weekly: bool = False) -> list[date]:
    """The dates of the days' pages in the archive folder (with `weekly`, of the weeks' pages: their
    last days), newest first; other files are ignored, and so is anything that is not a regular file
    (a symlink, a folder, a FIFO): `read_page` would refuse it."""
    found = []
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    for name in names:
        day = _page_date(name)
        if day is not None and name.startswith("week-") == weekly:
            found.append(day)
    return sorted(found, reverse=True)


@dataclass(frozen=True)
class Page:
    """An edition's page as `digest serve` sends it."""

    body: bytes
    modified: float  # st_mtime, for Last-Modified and the ETag
    etag: str


def read_page(folder: Path, name: str) -> Page | None:
    """The page for a requested name, or None (the same 404 as a missing page).

    Only YYYY-MM-DD.html of a real date, and only a regular file right in the folder: a symlink
    (to /etc/passwd, to a page elsewhere, even to another page of the folder), a folder, a FIFO or a
    device is refused. The name is opened once, without following a symlink (O_NOFOLLOW) and without
    waiting on a FIFO (O_NONBLOCK), and that descriptor is the one checked (fstat) and read, so a
    swap between a check and the open cannot win. The name is one path component (no slash can
    match PAGE_NAME), so nothing outside the folder is reachable.
    """
    if _page_date(name) is None:
        return None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(folder / name, flags)
    except OSError:  # missing, a symlink (ELOOP), unreadable
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_PAGE_BYTES:
            return None
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > MAX_PAGE_BYTES:  # grew while read: not a page digest wrote
                return None
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    tag = hashlib.md5(f"{info.st_mtime_ns}-{size}".encode(), usedforsecurity=False).hexdigest()
    return Page(b"".join(chunks), info.st_mtime, f'"{tag}"')


def _page_date(name: str) -> date | None:
    match = PAGE_NAME.fullmatch(name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(2))
    except ValueError:
        return None
