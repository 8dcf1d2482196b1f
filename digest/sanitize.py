"""Untrusted HTML from feeds and features → allowlisted HTML (nh3) and plain-text paragraphs."""
from __future__ import annotations

import re
import unicodedata

import lxml.html
import nh3

TAGS = {"p", "br", "a", "strong", "b", "em", "i", "ul", "ol", "li", "blockquote", "h2", "h3", "h4", "img", "figure", "figcaption"}
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}}
URL_SCHEMES = {"http", "https", "mailto"}
_BLOCKS = {"p", "li", "ul", "ol", "blockquote", "h2", "h3", "h4", "figure", "figcaption", "div"}
_SPACE = re.compile(r"\s+")


def clean_html(html: str) -> str:
    """Keep only harmless tags and attributes; links limited to http, https and mailto."""
    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        clean_content_tags={"script", "style", "iframe", "object", "embed", "form", "noscript", "svg", "math"},
    )


def one_line(text: str) -> str:
    """Collapse every run of white space (CR and LF included) to one space: titles and names never carry a newline."""
    return _SPACE.sub(" ", text).strip()


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

    def walk(element) -> None:
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


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a text, for matching rubrics and titles."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))
