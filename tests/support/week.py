"""A week of a newsroom, generated: seven days (Monday 23 to Sunday 29 November 2026) of briefs and
articles in the site's feed, a featured article a day in the editors' feed, and the agency's feed, with what a real week has: the agency repeating the site's stories (the same
URL with tracking parameters, the same title without a URL the next day) and corrections (the same
URL, its title changed, published again the next day).

    week = Week.write(folder)             the feeds and a digest.toml reading them
    week.stories(day)                     the distinct stories first published that day
    week.corrected, week.repeats          what the agency sends again
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from support.paths import EXAMPLES

ZONE = ZoneInfo("Africa/Casablanca")
MONDAY = date(2026, 11, 23)
DAYS = [MONDAY + timedelta(days=i) for i in range(7)]
RUBRICS = ["politique", "economie", "international", "societe", "culture", "sport", "tech"]
SITE = "https://lequotidien.example.ma"
WORDS = ["port", "budget", "stade", "réforme", "festival", "barrage", "startup", "élection", "récolte", "tramway",
         "université", "exportations", "hôpital", "sommet", "musée", "aéroport"]
PLACES = ["Rabat", "Casablanca", "Tanger", "Fès", "Agadir", "Oujda", "Marrakech", "Laâyoune"]


@dataclass(frozen=True)
class Story:
    day: date
    number: int
    rubric: str
    title: str
    url: str
    article: bool
    featured: bool
    at: datetime

    @property
    def body(self) -> str:
        if not self.article:
            return ""
        sentence = f"{self.title}. Les détails du dossier, chiffres à l'appui, et ce qu'en disent les acteurs concernés."
        return "".join(f"<p>{escape(sentence)} Paragraphe {i + 1}.</p>" for i in range(3))


@dataclass
class Week:
    folder: Path
    site: list[Story] = field(default_factory=list)  # the site's own feed: every story once
    corrected: dict[str, str] = field(default_factory=dict)  # url → the corrected title, sent the next day
    repeats: list[Story] = field(default_factory=list)  # sent again by the agency the next day, without a URL

    @classmethod
    def write(cls, folder: Path, per_day: int = 12) -> Week:
        folder.mkdir(parents=True, exist_ok=True)
        week = cls(folder)
        for d, day in enumerate(DAYS):
            for n in range(per_day):
                rubric = RUBRICS[(n + d) % len(RUBRICS)]
                word, place = WORDS[(n * 3 + d) % len(WORDS)], PLACES[(n + d * 2) % len(PLACES)]
                title = f"{place} : le {word} du jour {d + 1}, dossier {n + 1}"
                at = datetime(day.year, day.month, day.day, 7 + n % 14, (n * 7) % 60, tzinfo=ZONE)
                week.site.append(Story(day, n, rubric, title, f"{SITE}/{day.isoformat()}/dossier-{n + 1}",
                                       article=n % 3 == 0, featured=n == 0, at=at))
        for story in week.site:
            if story.number == 4 and story.day < DAYS[-1]:
                week.corrected[story.url] = story.title.replace("dossier", "dossier corrigé")
            if story.number == 5 and story.day < DAYS[-1]:
                week.repeats.append(story)
        (folder / "site.xml").write_text(week._rss([s for s in week.site if not s.featured]), encoding="utf-8")
        (folder / "features.xml").write_text(week._rss([s for s in week.site if s.featured]), encoding="utf-8")
        (folder / "agency.json").write_text(week._agency(), encoding="utf-8")
        (folder / "digest.toml").write_text(week._config(), encoding="utf-8")
        return week

    def stories(self, day: date) -> list[Story]:
        return [s for s in self.site if s.day == day]

    def _rss(self, stories: list[Story]) -> str:
        items = []
        for s in stories:
            kind = f"<content:encoded>{escape(s.body)}</content:encoded>" if s.article else ""
            items.append(
                f"<item><title>{escape(s.title)}</title><link>{s.url}</link><guid>{s.url}</guid>"
                f"<category>{s.rubric}</category><pubDate>{format_datetime(s.at)}</pubDate>{kind}</item>")
        return ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
                'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Le Quotidien</title>'
                f"<link>{SITE}</link><description>Le fil</description>{''.join(items)}</channel></rss>\n")

    def _agency(self) -> str:
        """The agency: the same day, a copy of some stories (their URL with tracking parameters);
        the next day, the corrections (same URL, a new title) and the repeats (same title, no URL)."""
        items = []
        for s in self.site:
            if s.number == 2:  # the same story, the same day, from the agency: one story
                items.append({"id": f"a-{s.url}", "url": f"{s.url}?utm_source=agence&utm_medium=fil",
                              "title": s.title, "date_published": (s.at + timedelta(minutes=5)).isoformat(),
                              "tags": [s.rubric]})
            later = s.at + timedelta(days=1)
            if s.url in self.corrected:
                items.append({"id": f"c-{s.url}", "url": s.url, "title": self.corrected[s.url],
                              "date_published": later.isoformat(), "tags": [s.rubric]})
            if s in self.repeats:
                items.append({"id": f"r-{s.url}", "title": s.title, "date_published": later.isoformat(),
                              "tags": [s.rubric]})
        return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Agence", "items": items},
                          ensure_ascii=False, indent=1)

    def _config(self) -> str:
        """examples/digest.toml reading the two feeds instead of the example day's sources."""
        text = (EXAMPLES / "digest.toml").read_text(encoding="utf-8")
        head, _, _ = text.partition("[[sources]]")
        return head + (
            '[[sources]]\nname = "Le Quotidien"\npath = "site.xml"\nkind = "feed"\nlang = "fr"\nfeatured = false\n\n'
            '[[sources]]\nname = "À la une"\npath = "features.xml"\nkind = "feed"\nlang = "fr"\nfeatured = true\n\n'
            '[[sources]]\nname = "Agence"\npath = "agency.json"\nkind = "feed"\nlang = "fr"\n')
