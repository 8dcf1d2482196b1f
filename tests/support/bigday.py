"""A generated day of many items (one RSS file), for the size budget and the speed of variants."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from digest.core.config import Settings, SourceSpec

from support.paths import TZ

RUBRICS = ["Politique", "Économie", "International", "Société", "Culture", "Sport", "Tech"]


def write_big_feed(folder: Path, count: int) -> Path:
    """An RSS 2.0 feed of `count` items of the day, a third of them full articles."""
    start = datetime(2026, 11, 29, 6, 0, tzinfo=TZ)
    entries = []
    for i in range(count):
        when = start + timedelta(minutes=(i * 37) % (16 * 60))
        body = "".join(f"<p>Paragraphe {p} de l’article {i} : des faits, des chiffres et une citation.</p>" for p in range(4))
        content = f"<content:encoded><![CDATA[{body * 2}]]></content:encoded>" if i % 3 == 0 else ""
        entries.append(
            f"<item><title>{escape(f'Dépêche {i:03d} : un titre réaliste sur {RUBRICS[i % 7]} et ses enjeux du jour')}</title>"
            f"<link>https://news.example.ma/{i}.html</link><guid>n-{i}</guid>"
            f"<pubDate>{format_datetime(when)}</pubDate><category>{RUBRICS[i % 7]}</category>"
            f"<description>Résumé de la dépêche {i}.</description>{content}</item>"
        )
    path = folder / "big.xml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>Big</title><link>https://news.example.ma/</link>{''.join(entries)}</channel></rss>",
        encoding="utf-8",
    )
    return path


def big_day(settings: Settings, folder: Path, count: int = 500) -> Settings:
    """The settings with one source, a generated feed of `count` items, and every rubric's cap at 200."""
    feed = write_big_feed(folder, count)
    return replace(settings, rubrics=tuple(replace(r, max_items=200) for r in settings.rubrics),
                   sources=(SourceSpec("big", str(feed), lang="fr"),))
