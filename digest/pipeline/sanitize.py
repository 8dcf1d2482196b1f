"""Untrusted text from sources → allowlisted HTML (nh3), plain-text paragraphs, text with no character
that cannot be shown (controls, lone surrogates, noncharacters), and text safe to print on a terminal."""
from __future__ import annotations

import re
from dataclasses import fields, replace
from html import escape, unescape
from typing import Any

import lxml.html
import nh3

from digest.core.model import Image, Item
from digest.core.text import clean_line, clean_url, one_line

TAGS = {"p", "br", "a", "strong", "b", "em", "i", "ul", "ol", "li", "blockquote", "h2", "h3", "h4", "img", "figure", "figcaption"}
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}}
URL_SCHEMES = {"http", "https", "mailto"}
_BLOCKS = {"p", "li", "ul", "ol", "blockquote", "h2", "h3", "h4", "figure", "figcaption", "div"}
# Tags nested deeper than this are an attack, not an article: the HTML5 tree builder nh3 uses costs
# time in the square of the depth (16,384 nested blockquotes: 1.7 s; a 1 MB feed entry of "<div>":
# minutes). Elements a browser closes by itself (p, li, td …) and void ones (br, img …) do not count.
MAX_DEPTH = 100
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)\b[^<>]*?(/?)>")
_FLAT = frozenset(["p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody", "tfoot", "option", "br", "img", "hr", "wbr", "meta", "link", "input", "source", "area", "col", "embed", "param", "track", "base"])


def too_deep(html: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the fragment's tags nest deeper than ``limit``: one linear pass, no parser."""
    depth = 0
    for match in _TAG.finditer(html):
        closing, name, self_closing = match.groups()
        if self_closing or name.lower() in _FLAT:
            continue
        depth = max(0, depth - 1) if closing else depth + 1
        if depth > limit:
            return True
    return False


def clean_html(html: str) -> str:
    """Keep only harmless tags and attributes; links limited to http, https and mailto. A fragment
    nested too deep keeps its text and loses its structure, before any HTML parser sees it."""
    if too_deep(html):
        html = escape(unescape(_TAG.sub(" ", html)))
    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        clean_content_tags={"script", "style", "iframe", "object", "embed", "form", "noscript", "svg", "math"},
    )


def html_to_text(html: str) -> str:
    """The text of a (possibly hostile) HTML fragment, on one line."""
    if "<" not in html and "&" not in html:
        return one_line(html)
    return one_line(" ".join(paragraphs(html)))


def paragraphs(html: str) -> tuple[str, ...]:
    """Plain-text paragraphs of an HTML fragment, after sanitising it."""
    cleaned = clean_html(html)
    if not cleaned.strip():
        return ()
    root = lxml.html.fragment_fromstring(cleaned, create_parent="div")
    out: list[str] = []
    line: list[str] = []

    def flush() -> None:
        text = one_line("".join(line))
        line.clear()
        if text:
            out.append(text)

    def walk(element: lxml.html.HtmlElement) -> None:
        line.append(element.text or "")
        for child in element:
            if child.tag in _BLOCKS:
                flush()
                walk(child)
                flush()
            elif isinstance(child.tag, str):  # inline (comments have a non-str tag)
                line.append(" " if child.tag == "br" else child.text_content())
            line.append(child.tail or "")

    walk(root)
    flush()
    return tuple(out)


def clean_item(item: Item) -> Item | None:
    """Every text field of an item cleaned (clean_line; addresses clean_url); None when nothing is
    left of its title.

    Generic over the fields, so a field added to Item later is cleaned too. An empty link, category,
    author or image address left by the cleaning becomes "none".
    """
    # Any: each field has its own type, which the loop keeps (a str stays a str or None, and so on).
    changes: dict[str, Any] = {}
    for f in fields(Item):
        value = getattr(item, f.name)
        if isinstance(value, str):
            new: object = clean_url(value) if f.name == "url" else clean_line(value)
            if not new and f.name in ("url", "category", "author"):
                new = None
        elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            new = tuple(p for p in map(clean_line, value) if p)
        elif isinstance(value, Image):
            url = clean_url(value.url)
            new = Image(url, clean_line(value.alt), value.width, value.height) if url else None
        else:
            continue
        if new != value:
            changes[f.name] = new
    if not changes:
        return item
    cleaned = replace(item, **changes)
    return cleaned if cleaned.title else None


