"""RSS 2.0, RSS 1.0 and Atom through feedparser, and JSON Feed (which feedparser does not read);
feed HTML is sanitised (nh3) before anything is taken from it, and characters no XML or email may
carry are taken out of the bytes before feedparser sees them."""
from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import feedparser

from digest.core.errors import SourceError
from digest.core.model import Image, Item
from digest.core.text import clean_text, clean_url, one_line
from digest.pipeline.sanitize import html_to_text, paragraphs
from digest.pipeline.sources.base import Context, SourceKind, image_size

# A feed entry whose content runs to this many characters is an article; shorter ones are briefs.
ARTICLE_CHARS = 400


@dataclass(frozen=True)
class Entry:
    """One feed entry, whatever the format, before it becomes an Item."""

    title_html: str
    link: str | None
    published: datetime | None
    category: str | None
    summary_html: str
    content_html: str
    image_url: str | None
    image_alt: str
    author: str
    image_size: tuple[int, int] | None = None  # media:content's width and height, when both are given


# A character reference: feedparser's fallback parser crashes on one to a surrogate or past U+10FFFF.
_CHAR_REF = re.compile(rb"&#(?:[xX]0*([0-9a-fA-F]+)|0*([0-9]+));")
# What XML 1.0 forbids as raw UTF-8 (C0 controls but tab, LF and CR; U+FFFE, U+FFFF; encoded
# surrogates, which are not UTF-8 at all and would make feedparser read the whole feed as cp1252).
_UTF8_UNFIT = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]|\xed[\xa0-\xbf][\x80-\xbf]")
_DECLARED = re.compile(rb"\s*<\?xml[^>]{0,200}?encoding\s*=\s*[\"']([A-Za-z0-9._-]{1,40})")


def _unfit_code_point(code: int) -> bool:
    return (code > 0x10FFFF or (code < 0x20 and code not in (0x9, 0xA, 0xD)) or 0xD800 <= code <= 0xDFFF
            or 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE)


def _char_ref(match: re.Match[bytes]) -> bytes:
    digits, base = (match[1], 16) if match[1] is not None else (match[2], 10)
    if len(digits) > 7:  # past U+10FFFF whatever the digits (and no huge number is ever made)
        return b""
    return b"" if _unfit_code_point(int(digits, base)) else match[0]


def xml_fit(data: bytes) -> bytes:
    """Feed bytes with no character reference to what no XML may hold and, in a UTF-8 feed (the
    default), none of those characters raw: XML's own parser then reads a feed that one bad character
    would have thrown to feedparser's lenient fallback. Other encodings are left to that fallback."""
    if data[:2] in (b"\xfe\xff", b"\xff\xfe") or b"\x00" in data[:4]:
        return data  # UTF-16 or UTF-32: not byte-compatible with these patterns
    declared = _DECLARED.match(data.removeprefix(b"\xef\xbb\xbf"))
    if declared is None or declared[1].lower().replace(b"_", b"-") in (b"utf-8", b"utf8"):
        data = _UTF8_UNFIT.sub(b"", data)
    return _CHAR_REF.sub(_char_ref, data)


def _feedparser_entries(data: bytes, context: Context) -> list[Entry]:
    name = context.spec.name
    parsed = feedparser.parse(xml_fit(data), sanitize_html=False, resolve_relative_uris=False)
    if not parsed.entries:
        if not parsed.get("version"):
            what = "an HTML page" if b"<html" in data[:4096].lower() else "not a feed"
            reason = f": {_bozo_reason(parsed)}" if parsed.get("bozo") else ""
            raise SourceError(name, f"{what}, not RSS, Atom or JSON Feed{reason}", "check the address of the feed")
        return []
    if parsed.get("bozo"):
        context.warn(f"source {name!r}: the feed has errors ({_bozo_reason(parsed)}); read {len(parsed.entries)} items anyway")
    entries: list[Entry] = []
    for e in parsed.entries:
        stamp = next((e.get(k) for k in ("published_parsed", "updated_parsed", "created_parsed") if e.get(k)), None)
        tags = [one_line(t.get("term") or t.get("label") or "") for t in (e.get("tags") or [])]
        image_url, image_alt, image_size = _feedparser_image(e)
        entries.append(
            Entry(
                title_html=e.get("title", "") or "",
                link=e.get("link") or None,
                published=datetime.fromtimestamp(calendar.timegm(stamp), tz=UTC) if stamp else None,
                category=next((t for t in tags if t), None),
                summary_html=e.get("summary", "") or "",
                content_html=max((c.get("value", "") for c in e.get("content", [])), key=len, default=""),
                image_url=image_url,
                image_alt=image_alt,
                author=e.get("author", "") or "",
                image_size=image_size,
            )
        )
    return entries


def _feedparser_image(entry: feedparser.FeedParserDict) -> tuple[str | None, str, tuple[int, int] | None]:
    media = [m for m in entry.get("media_content", []) if m.get("medium", "image") == "image" or m.get("type", "").startswith("image/")]
    media += entry.get("media_thumbnail", [])
    candidates = [(m.get("url"), image_size(m.get("width"), m.get("height"))) for m in media]
    candidates += [(e.get("href"), None) for e in entry.get("enclosures", []) if e.get("type", "").startswith("image/")]
    if entry.get("image", {}).get("href"):
        candidates.append((entry["image"]["href"], None))
    url, size = next(((u, s) for u, s in candidates if u), (None, None))
    return url, html_to_text(entry.get("media_description", "") or ""), size





def _bozo_reason(parsed: feedparser.FeedParserDict) -> str:
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "unknown error"
    text = getattr(exc, "getMessage", lambda: str(exc))()
    line = getattr(exc, "getLineNumber", lambda: None)()
    return f"{text} (line {line})" if line else one_line(str(text))


def _json_date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _json_entries(data: bytes, context: Context) -> list[Entry]:
    """JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1)."""
    name = context.spec.name
    try:
        # An encoded lone surrogate is let through and strict=False reads a raw control character
        # inside a string: each field taken is cleaned below, as what it is (text or address).
        feed = json.loads(data.decode("utf-8-sig", "surrogatepass"), strict=False)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(name, f"not valid JSON: {one_line(str(exc))}") from None
    if not isinstance(feed, dict) or not str(feed.get("version", "")).startswith("https://jsonfeed.org/version/"):
        raise SourceError(name, "JSON, but not a JSON Feed (no jsonfeed.org version)")
    items = feed.get("items")
    if not isinstance(items, list):
        raise SourceError(name, "JSON Feed without an 'items' list")
    entries: list[Entry] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        # JSON escapes can still spell any unfit character: every text taken is cleaned.
        tags = [one_line(clean_text(t)) for t in item.get("tags", []) if isinstance(t, str) and t.strip()]
        authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
        content = item.get("content_html") or ""
        if not content and isinstance(item.get("content_text"), str):
            content = "".join(f"<p>{json_escape(p)}</p>" for p in clean_text(item["content_text"]).split("\n\n"))
        entries.append(
            Entry(
                title_html=clean_text(str(item.get("title") or "")),
                link=_json_text(item.get("url")) or _json_text(item.get("external_url")) or None,
                published=_json_date(item.get("date_published")) or _json_date(item.get("date_modified")),
                category=tags[0] if tags else None,
                summary_html=clean_text(str(item.get("summary") or "")),
                content_html=clean_text(str(content)),
                image_url=_json_text(item.get("image")) or _json_text(item.get("banner_image")) or None,
                image_alt="",
                author=clean_text(next((str(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")), "")),
            )
        )
    return entries


def _json_text(value: object) -> str:
    """A JSON Feed address: cleaned, and "" for anything that is not a string."""
    return clean_url(value) if isinstance(value, str) else ""


def json_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def read(data: bytes, context: Context) -> list[Item]:
    name = context.spec.name
    if not data.strip():
        raise SourceError(name, "the feed is empty")
    is_json = data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
    entries = _json_entries(data, context) if is_json else _feedparser_entries(data, context)
    if not entries:
        context.warn(f"source {name!r}: the feed has no items")
        return []

    items: list[Item] = []
    skipped: list[str] = []
    for number, entry in enumerate(entries, start=1):
        body = paragraphs(entry.content_html) if entry.content_html else ()
        summary = html_to_text(entry.summary_html)
        title = html_to_text(entry.title_html)
        if not title and summary:
            title = summary if len(summary) <= 120 else summary[:120].rsplit(" ", 1)[0] + "…"
        if not title or entry.published is None:
            skipped.append(f"item {number} ({'no title' if not title else 'no date'})")
            continue
        if summary and body and summary.rstrip("…. ") in body[0]:
            summary = ""  # the summary only repeats the article's opening
        is_article = sum(map(len, body)) >= ARTICLE_CHARS
        image = None
        if entry.image_url and entry.image_url.startswith("https://"):
            w, h = entry.image_size or (None, None)
            image = Image(url=entry.image_url, alt=entry.image_alt or title, width=w, height=h)
        items.append(
            Item(
                kind="article" if is_article else "brief",
                title=title,
                published=entry.published.astimezone(context.tz),
                source=name,
                url=entry.link if entry.link and entry.link.lower().startswith(("https://", "http://")) else None,
                body=body if is_article else (),
                summary=summary if summary != title else "",
                category=context.spec.rubric or entry.category,
                image=image,
                featured=bool(context.spec.featured) and is_article,
                author=one_line(entry.author) or None,
            )
        )
    if skipped:
        context.warn(f"source {name!r}: left out {', '.join(skipped)}")
    return items


def _sniff(head: bytes) -> bool:
    if head.startswith(b"{"):
        return b"jsonfeed" in head
    return head.startswith(b"<") and any(tag in head for tag in (b"<rss", b"<feed", b"<rdf:rdf", b"<?xml"))


# Any markup nothing else claims comes here too (HTML, broken XML): this reader says clearly what it is not.
KIND = SourceKind("feed", read, extensions=(".xml", ".rss", ".atom", ".rdf", ".json"), content_types=("xml", "json"),
                  sniff=_sniff, fallback=lambda head: head.startswith(b"<"))
