"""Editor-written features: Markdown with front matter (title, published, rubric, summary, image …)."""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import cmarkgfm
import frontmatter
import yaml
from cmarkgfm.cmark import Options

from digest.core.errors import SourceError
from digest.core.model import Image, Item
from digest.core.text import clean_text, one_line
from digest.pipeline.sanitize import html_to_text, paragraphs
from digest.pipeline.sources.base import Context, SourceKind, decode_text, image_size, too_large

KEYS = {"title", "published", "date", "rubric", "url", "summary", "image", "image_alt", "image_width", "image_height",
        "featured", "pin", "author"}

# A feature is a few kilobytes of an editor's text (the examples: 2 and 3 KB); 1 MiB, some 150,000
# words, is already a mistake or an attack.
MAX_BYTES = 1024 * 1024


def _to_html(text: str) -> str:
    """CommonMark through cmark-gfm, whose cost is linear in the text (python-markdown's is not: 16 KB
    of "[" took it 46 s). Raw HTML passes here and is cleaned by nh3 with every other source's."""
    return cmarkgfm.markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE)


def _when(value: object, context: Context, name: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise SourceError(name, f"front matter 'published' is not an ISO 8601 date: {value!r}", "write it like 2026-11-29T09:15:00+01:00") from None
    if isinstance(value, datetime):
        # A time without an offset is the newsroom's local time.
        return value if value.tzinfo else value.replace(tzinfo=context.tz)
    if isinstance(value, date):
        return datetime.combine(value, time(0, 0), context.tz)
    raise SourceError(name, "front matter needs 'published' (an ISO 8601 date and time)")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, on one line (the YAML text starts with the newline after the opening
    ---, so its line numbers are the file's)."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1})"
    return str(exc).splitlines()[0]


def read(data: bytes, context: Context) -> list[Item]:
    name = context.spec.name
    if len(data) > MAX_BYTES:
        raise too_large(name, "the feature", MAX_BYTES)
    try:
        post = frontmatter.loads(decode_text(data, name))
    except yaml.YAMLError as exc:
        raise SourceError(name, f"front matter is not valid YAML: {_yaml_problem(exc)}") from None
    # YAML's escapes ("\x01", "\ud800") can spell what the file's text no longer holds. (Any: YAML values
    # of every kind, each checked below where it is read.)
    meta: dict[str, Any] = {key: clean_text(value) if isinstance(value, str) else value for key, value in post.metadata.items()}
    for key in ("title", "rubric", "url", "summary", "image", "image_alt", "author"):
        if key in meta and meta[key] is not None and not isinstance(meta[key], (str, int, float)):
            raise SourceError(name, f"front matter {key!r} must be text, not {type(meta[key]).__name__}")
    unknown = sorted(set(meta) - KEYS)
    if unknown:
        context.warn(f"source {name!r}: unknown front matter key {unknown[0]!r} ignored")
    title = one_line(str(meta.get("title") or ""))
    if not title:
        raise SourceError(name, "front matter needs a 'title'")
    published = _when(meta.get("published", meta.get("date")), context, name)
    body = paragraphs(_to_html(post.content))
    url = meta.get("url") or None
    if url is not None and not str(url).startswith("https://"):
        raise SourceError(name, f"front matter 'url' must be an https:// address, not {url!r}")
    image = None
    if meta.get("image"):
        if not str(meta["image"]).startswith("https://"):
            raise SourceError(name, f"front matter 'image' must be an https:// address, not {meta['image']!r}")
        if not meta.get("image_alt"):
            context.warn(f"source {name!r}: 'image' has no 'image_alt'; the title stands in for it")
        w, h = image_size(meta.get("image_width"), meta.get("image_height")) or (None, None)
        image = Image(url=str(meta["image"]), alt=one_line(str(meta.get("image_alt") or title)), width=w, height=h)
    featured = meta.get("featured", True) if context.spec.featured is None else context.spec.featured
    try:
        pin = int(meta.get("pin", 0))
    except (TypeError, ValueError):
        raise SourceError(name, f"front matter 'pin' must be a whole number, not {meta.get('pin')!r}") from None
    return [
        Item(
            kind="article",
            title=title,
            published=published.astimezone(context.tz),
            source=name,
            url=str(url) if url else None,
            body=body,
            summary=html_to_text(str(meta.get("summary") or "")),
            category=context.spec.rubric or (one_line(str(meta["rubric"])) if meta.get("rubric") else None),
            image=image,
            featured=bool(featured),
            pin=pin,
            author=one_line(str(meta["author"])) if meta.get("author") else None,
        )
    ]


# A feature starts with its front matter; a .md name is one too.
KIND = SourceKind("markdown", read, extensions=(".md", ".markdown"), sniff=lambda head: head.startswith(b"---"))
