"""RSS 2.0, RSS 1.0, Atom and JSON Feed, through feedparser; feed HTML is sanitised (nh3)."""
from __future__ import annotations

import calendar
import html
from datetime import datetime, timezone

import feedparser

from ..errors import SourceError
from ..model import Image, Item
from ..sanitize import html_to_text, one_line, paragraphs
from . import Context

# A feed entry whose content runs to this many characters is an article; shorter ones are briefs.
ARTICLE_CHARS = 400


def _published(entry) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            return datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
    return None


def _image(entry, title: str) -> Image | None:
    candidates = []
    for media in entry.get("media_content", []):
        if media.get("medium", "image") == "image" or media.get("type", "").startswith("image/"):
            candidates.append(media.get("url"))
    candidates += [m.get("url") for m in entry.get("media_thumbnail", [])]
    candidates += [e.get("href") for e in entry.get("enclosures", []) if e.get("type", "").startswith("image/")]
    if entry.get("image", {}).get("href"):
        candidates.append(entry["image"]["href"])
    for url in candidates:
        if url and url.startswith("https://"):
            alt = html_to_text(entry.get("media_description", "") or "") or title
            return Image(url=url, alt=alt)
    return None


def _bozo_reason(parsed) -> str:
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "unknown error"
    text = getattr(exc, "getMessage", lambda: str(exc))()
    line = getattr(exc, "getLineNumber", lambda: None)()
    return f"{text} (line {line})" if line else str(text)


def read(data: bytes, context: Context) -> list[Item]:
    name = context.spec.name
    if not data.strip():
        raise SourceError(name, "the feed is empty")
    parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    if not parsed.entries:
        if not parsed.get("version"):
            what = "an HTML page" if b"<html" in data[:4096].lower() else "not a feed"
            reason = f": {_bozo_reason(parsed)}" if parsed.get("bozo") else ""
            raise SourceError(name, f"{what}, not RSS, Atom or JSON Feed{reason}", "check the address of the feed")
        context.warn(f"source {name!r}: the feed has no items")
        return []
    if parsed.get("bozo"):
        context.warn(f"source {name!r}: the feed has errors ({_bozo_reason(parsed)}); read {len(parsed.entries)} items anyway")

    featured = bool(context.spec.featured)
    items: list[Item] = []
    skipped: list[str] = []
    for number, entry in enumerate(parsed.entries, start=1):
        summary_html = entry.get("summary", "") or ""
        content_html = max((c.get("value", "") for c in entry.get("content", [])), key=len, default="")
        body = paragraphs(content_html) if content_html else ()
        summary = html_to_text(summary_html)
        title = html_to_text(entry.get("title", "") or "")
        if not title:
            title = one_line(html.unescape(summary))[:120].rsplit(" ", 1)[0] if summary else ""
        published = _published(entry)
        if not title or published is None:
            skipped.append(f"item {number} ({'no title' if not title else 'no date'})")
            continue
        if summary and body and summary.rstrip("…. ") in body[0]:
            summary = ""  # the summary only repeats the article's opening
        tags = entry.get("tags") or []
        category = context.spec.rubric or next((one_line(t.get("term") or t.get("label") or "") for t in tags if t.get("term") or t.get("label")), None)
        is_article = sum(map(len, body)) >= ARTICLE_CHARS
        items.append(
            Item(
                kind="article" if is_article else "brief",
                title=title,
                published=published.astimezone(context.tz),
                source=name,
                url=(entry.get("link") or None),
                body=body if is_article else (),
                summary=summary if summary != title else "",
                category=category or None,
                image=_image(entry, title),
                featured=featured and is_article,
                author=one_line(entry.get("author", "")) or None,
            )
        )
    if skipped:
        context.warn(f"source {name!r}: left out {', '.join(skipped)}")
    return items
