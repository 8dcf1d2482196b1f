"""Writes this folder's week of a newsroom: Monday 23 to Sunday 29 November 2026 of "Le Quotidien".

    python examples/week/make_week.py

site.xml       the site's feed: twelve stories a day (briefs, and an article in three), every rubric
features.xml   the editors' feed: the day's featured article (it may lead the email)
agency.json    the agency's feed (JSON Feed): a copy of a story the same day (its URL with tracking
               parameters), and the next day a correction (the same URL, a new title) and a repeat
               (the same title, no URL): each reaches a reader once
digest.toml    examples/digest.toml with these three sources

The files are committed; run it again only to change the week. (tests/support/week.py makes the same
week for the tests.)
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
ZONE = ZoneInfo("Africa/Casablanca")
DAYS = [date(2026, 11, 23) + timedelta(days=i) for i in range(7)]
PER_DAY = 12
RUBRICS = ["politique", "economie", "international", "societe", "culture", "sport", "tech"]
SITE = "https://lequotidien.example.ma"
WORDS = ["le port", "le budget", "le stade", "la réforme", "le festival", "le barrage", "la startup", "l’élection",
         "la récolte", "le tramway", "l’université", "les exportations", "l’hôpital", "le sommet", "le musée", "l’aéroport"]
PLACES = ["Rabat", "Casablanca", "Tanger", "Fès", "Agadir", "Oujda", "Marrakech", "Laâyoune"]


def stories() -> list[dict]:
    out = []
    for d, day in enumerate(DAYS):
        for n in range(PER_DAY):
            word, place = WORDS[(n * 3 + d) % len(WORDS)], PLACES[(n + d * 2) % len(PLACES)]
            title = f"{place} : {word} du jour {d + 1}, dossier {n + 1}"
            out.append({"day": day, "number": n, "rubric": RUBRICS[(n + d) % len(RUBRICS)], "title": title,
                        "url": f"{SITE}/{day.isoformat()}/dossier-{n + 1}", "article": n % 3 == 0, "featured": n == 0,
                        "at": datetime(day.year, day.month, day.day, 7 + n % 14, (n * 7) % 60, tzinfo=ZONE)})
    return out


def rss(chosen: list[dict]) -> str:
    entries = []
    for s in chosen:
        body = ""
        if s["article"]:
            sentence = escape(f"{s['title']}. Les détails du dossier, chiffres à l'appui, et ce qu'en disent les acteurs concernés.")
            body = "<content:encoded>" + escape("".join(f"<p>{sentence} Paragraphe {i + 1}.</p>" for i in range(3))) + "</content:encoded>"
        entries.append(f"<item><title>{escape(s['title'])}</title><link>{s['url']}</link><guid>{s['url']}</guid>"
                       f"<category>{s['rubric']}</category><pubDate>{format_datetime(s['at'])}</pubDate>{body}</item>")
    return ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Le Quotidien</title>'
            f"<link>{SITE}</link><description>Le fil</description>\n" + "\n".join(entries) + "\n</channel></rss>\n")


def agency(site: list[dict]) -> str:
    entries = []
    for s in site:
        later = (s["at"] + timedelta(days=1)).isoformat()
        if s["number"] == 2:  # the same story the same day, its URL with tracking parameters
            entries.append({"id": f"a-{s['url']}", "url": f"{s['url']}?utm_source=agence&utm_medium=fil", "title": s["title"],
                            "date_published": (s["at"] + timedelta(minutes=5)).isoformat(), "tags": [s["rubric"]]})
        if s["number"] == 4 and s["day"] < DAYS[-1]:  # a correction the next day
            entries.append({"id": f"c-{s['url']}", "url": s["url"], "title": s["title"].replace("dossier", "dossier corrigé"),
                            "date_published": later, "tags": [s["rubric"]]})
        if s["number"] == 5 and s["day"] < DAYS[-1]:  # a repeat the next day, without its URL
            entries.append({"id": f"r-{s['url']}", "title": s["title"], "date_published": later, "tags": [s["rubric"]]})
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Agence", "items": entries},
                      ensure_ascii=False, indent=1) + "\n"


def config() -> str:
    text = (HERE.parent / "digest.toml").read_text(encoding="utf-8")
    head, _, _ = text.partition("# The sources of the day.")
    head = head.replace("# digest.toml — the example newsroom", "# digest.toml — a week of the example newsroom", 1)
    return head + (
        "# The week's sources (written by make_week.py).\n\n"
        '[[sources]]\nname = "Le Quotidien"\npath = "site.xml"\nkind = "feed"\nlang = "fr"\nfeatured = false\n\n'
        '[[sources]]\nname = "À la une"\npath = "features.xml"\nkind = "feed"\nlang = "fr"\nfeatured = true\n\n'
        '[[sources]]\nname = "Agence"\npath = "agency.json"\nkind = "feed"\nlang = "fr"\n')


def main() -> None:
    site = stories()
    (HERE / "site.xml").write_text(rss([s for s in site if not s["featured"]]), encoding="utf-8")
    (HERE / "features.xml").write_text(rss([s for s in site if s["featured"]]), encoding="utf-8")
    (HERE / "agency.json").write_text(agency(site), encoding="utf-8")
    (HERE / "digest.toml").write_text(config(), encoding="utf-8")


if __name__ == "__main__":
    main()
