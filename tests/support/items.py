"""Building blocks for tests: make items and editions without sources, and parse rendered HTML."""
from __future__ import annotations

from datetime import datetime, timedelta

import lxml.html

from digest.core.model import Image, Item

from support.paths import DAY, TZ


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
