"""Page dumps: a newsroom's front page saved as text — timed briefs, page furniture, featured articles.

The shape (see examples/sources/homepage-*.txt)::

    - 20:55Immo Expo By Avito 2025 : Le salon qui réinvente …   ← a brief: optional "- ", HH:MM, title
    Sous-Rubrique                                               ← furniture: a short line no paragraph follows
    Bourita et Blinken renforcent les liens …                   ← an article's title: the short line right before
    Le ministre des Affaires étrangères, …                      ← paragraphs, one per line
"""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from digest.core.errors import SourceError
from digest.core.model import Item
from digest.core.text import fold, one_line
from digest.pipeline.sources.base import Context, SourceKind, decode_text

_ARABIC_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_BRIEF = re.compile(r"^(?:[-–—•*·]\s*)?([01]?\d|2[0-3])\s*[:hH.]\s*([0-5]\d)\s*[-–—|:·]?\s*(\S.*)$")
# Lines that are page furniture even when a paragraph happens to follow them.
_FURNITURE = re.compile(
    r"^(sous-rubrique|rubrique|suivez-nous( sur .*)?|partager( sur .*)?|partagez( .*)?|(a )?lire aussi|voir aussi"
    r"|publicite|commentaires?|abonnez-vous.*|newsletter|tags?|mots-cles|les plus lus|dernieres? (nouvelles|infos)"
    r"|follow us( on .*)?|share( on .*)?|read more|related|advertisement"
    r"|تابعونا( على .*)?|اقرأ أيضا|اقرأ ايضا|شارك(وا)?( على .*)?|إعلان|اعلان)\s*:?$"
)
_SENTENCE_END = tuple('.!?»"…)')
_TITLE_MAX = 220


def _is_paragraph(line: str) -> bool:
    return len(line) >= 160 or (len(line) >= 60 and line.endswith(_SENTENCE_END) and len(line.split()) >= 10)


def _is_furniture(line: str) -> bool:
    return bool(_FURNITURE.match(fold(line).rstrip(" .")))


def _day_offsets(hours_minutes: list[tuple[int, int]]) -> list[int]:
    """Day offsets (0 or negative) for each brief, given that the list runs newest first.

    A jump of more than twelve hours the wrong way is midnight: "00:20, 23:50" means 23:50 yesterday.
    A page listing oldest first is read the same way, mirrored.
    """
    minutes = [h * 60 + m for h, m in hours_minutes]
    steps = [b - a for a, b in zip(minutes, minutes[1:])]
    newest_first = sum(s < 0 for s in steps) >= sum(s > 0 for s in steps)
    offsets, offset = [0] * len(minutes), 0
    for i, step in enumerate(steps, start=1):
        if newest_first and step > 12 * 60:
            offset -= 1
        elif not newest_first and step < -12 * 60:
            offset += 1
        offsets[i] = offset
    if not newest_first and offset:
        # The last brief of an oldest-first page is the edition's day.
        offsets = [o - offset for o in offsets]
    return offsets


def read(data: bytes, context: Context) -> list[Item]:
    name = context.spec.name
    text = decode_text(data, name)
    lines = [one_line(line) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise SourceError(name, "the page dump is empty")

    briefs: list[tuple[int, int, str]] = []
    rest: list[str] = []
    for line in lines:
        match = _BRIEF.match(line.translate(_ARABIC_DIGITS)) if len(line) <= _TITLE_MAX + 8 else None
        if match:
            briefs.append((int(match[1]), int(match[2]), line[match.start(3):]))
        else:
            rest.append(line)

    items: list[Item] = []
    offsets = _day_offsets([(h, m) for h, m, _ in briefs])
    for (hour, minute, headline), offset in zip(briefs, offsets):
        when = datetime.combine(context.day + timedelta(days=offset), time(hour, minute), context.tz)
        items.append(Item(kind="brief", title=headline, published=when, source=name, category=context.spec.rubric))

    # An article's published time is not on the page: the newest brief's time bounds it (the page was
    # saved after that), and `timed=False` keeps it from being shown.
    page_time = max((i.published for i in items), default=datetime.combine(context.day, time(0, 0), context.tz))
    featured = context.spec.featured if context.spec.featured is not None else True
    title: str | None = None
    body: list[str] = []

    def close() -> None:
        if title and body:
            items.append(
                Item(kind="article", title=title, published=page_time, source=name, body=tuple(body),
                     category=context.spec.rubric, featured=featured, timed=False)
            )

    for i, line in enumerate(rest):
        if _is_paragraph(line) and not _is_furniture(line):
            if title is None:
                context.warn(f"source {name!r}: a paragraph with no title before it was left out: {line[:60]}…")
                continue
            body.append(line)
            continue
        close()
        title, body = None, []
        following = rest[i + 1] if i + 1 < len(rest) else ""
        if not _is_furniture(line) and len(line) <= _TITLE_MAX and _is_paragraph(following):
            title = line
    close()
    if not items:
        raise SourceError(name, "no briefs (lines like '20:55 Title') and no articles found", "is this a page dump?")
    return items


# A page saved as text has no mark of its own: whatever no other kind takes.
KIND = SourceKind("pagedump", read, fallback=lambda head: True)
