"""Building blocks for tests: make items and editions without sources, and read rendered HTML."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import lxml.html

from digest.model import Image, Item

from conftest import DAY, TZ

_FONT_SIZE = re.compile(r"font-size\s*:\s*([\d.]+)px")


def item(title: str, hour: int = 12, minute: int = 0, kind: str = "brief", **fields) -> Item:
    published = fields.pop("published", datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=TZ))
    if kind == "article":
        fields.setdefault("body", (f"{title} — premier paragraphe avec assez de texte pour être un article complet.",))
    return Item(kind=kind, title=title, published=published, source=fields.pop("source", "test"), **fields)


def day_of(count: int, rubrics: list[str], with_images: bool = False) -> list[Item]:
    """A generated day: `count` items spread over the rubrics (by category) and the hours, a third of them articles."""
    items = []
    start = datetime(DAY.year, DAY.month, DAY.day, 6, 0, tzinfo=TZ)
    for i in range(count):
        rubric = rubrics[i % len(rubrics)]
        kind = "article" if i % 3 == 0 else "brief"
        items.append(
            Item(
                kind=kind,
                title=f"Dépêche {i:03d} : un titre d’actualité réaliste sur la rubrique {rubric} et ses enjeux",
                published=start + timedelta(minutes=(i * 97) % (16 * 60)),
                source="generated",
                url=f"https://news.example.ma/{rubric}/{i:03d}.html",
                body=(f"Paragraphe d’ouverture de l’article {i}, avec des détails, des chiffres et des citations. " * 3,)
                if kind == "article" else (),
                category=rubric,
                image=Image(f"https://news.example.ma/img/{i}.jpg", f"Photo {i}") if with_images and kind == "article" else None,
                featured=(i % 50 == 0),
            )
        )
    return items


def parse(html: str):
    return lxml.html.document_fromstring(html)


def text_font_sizes(root) -> list[tuple[float, str]]:
    """(effective font size, text) for every visible text run, following inline styles down the tree.

    The preheader (display:none) is skipped: it is hidden on purpose.
    """
    out: list[tuple[float, str]] = []

    def walk(element, inherited: float, hidden: bool) -> None:
        if not isinstance(element.tag, str):
            return
        style = element.get("style", "")
        sizes = _FONT_SIZE.findall(style)
        size = float(sizes[-1]) if sizes else inherited
        hidden = hidden or "display:none" in style.replace(" ", "")
        if element.text and element.text.strip() and not hidden:
            out.append((size, element.text.strip()))
        for child in element:
            walk(child, size, hidden)
            if child.tail and child.tail.strip() and not hidden:
                out.append((size, child.tail.strip()))

    body = root.find("body")
    walk(body, 16.0, False)
    return out
