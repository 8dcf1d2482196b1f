"""Each reader's rhythm, over a generated week run day by day as cron would (`digest send --date D --now
D 21:00`): daily readers, weekly readers, and a reader who switches from daily to weekly on Wednesday.
What each one received is read from the messages themselves (the outbox), never from digest's own record.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from digest.core.config import load
from digest.delivery.editions import WEEKLY, Editions, edition_key
from digest.delivery.items import ItemStore
from digest.delivery.schema import deliveries, items
from digest.web import checks
from subscribers.schema import subscribers
from subscribers.store import Store

from support import cli as commands
from support.mail import message_parts, parse
from support.week import DAYS, SITE, Week

STORY = re.compile(re.escape(SITE) + r"/(2026-11-\d\d)/dossier-(\d+)")
READERS = {  # address: (locale, rubrics, cadence)
    "daily-fr@example.com": ("fr", frozenset(), "daily"),
    "daily-en@example.com": ("en", frozenset({"economie", "sport"}), "daily"),
    "weekly-fr@example.com": ("fr", frozenset(), "weekly"),
    "weekly-ar@example.com": ("ar", frozenset({"politique", "culture"}), "weekly"),
    "switcher@example.com": ("fr", frozenset(), "daily"),  # weekly from Wednesday on
    "late@example.com": ("fr", frozenset(), "daily"),  # weekly from Sunday night, after the week's dailies
}


def set_cadence(store: Store, email: str, cadence: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.email == email).values(cadence=cadence))


def plain(text: str) -> str:
    """Text with French typography's no-break spaces (before ":", "?") as plain spaces."""
    return text.replace("\xa0", " ").replace("\u202f", " ")


def stories_in(data: bytes) -> set[tuple[str, str]]:
    """The site's stories a message links to: (day, number); a story linked twice counts once."""
    _, html = message_parts(data)
    return set(STORY.findall(html))


@pytest.fixture
def week_run(tmp_path: Path, database: str) -> tuple[Week, Path, Store]:
    week = Week.write(tmp_path / "week")
    config = tmp_path / "week" / "digest.toml"
    config.write_text(config.read_text(encoding="utf-8").replace('database = "digest.db"', f'database = "{database}"'),
                      encoding="utf-8")
    store = Store.open(load(config).database)
    for email, (locale, rubrics, cadence) in READERS.items():
        store.add(email, locale=locale, timezone="Africa/Casablanca", rubrics=rubrics, cadence=cadence)
    for day in DAYS:
        if day == date(2026, 11, 25):  # Wednesday, before the day's edition: the switcher goes weekly
            set_cadence(store, "switcher@example.com", "weekly")
        now = f"{day}T21:00:00+01:00"
        if day == DAYS[-1]:  # Sunday: a dry run counts the day's readers and the week's
            rehearsal = commands.digest("send", "-c", str(config), "--date", day.isoformat(), "--now", now, "--dry-run")
            assert "messages  6 " in rehearsal.stdout, rehearsal.stdout + rehearsal.stderr
        done = commands.digest("send", "-c", str(config), "--date", day.isoformat(), "--now", now)
        assert done.returncode == 0, done.stdout + done.stderr
    # Sunday night, the week's dailies read: going weekly brings no week made of what was read already.
    # While one of those dailies is still held by a worker on another machine, the reader is left
    # without a row of the week (that message may yet fail); once it is sent, the row says they need none.
    set_cadence(store, "late@example.com", "weekly")
    late = store.get("late@example.com").id
    thursday = edition_key(load(config).newsletter.list_id, DAYS[3])
    mine = (deliveries.c.edition == thursday) & (deliveries.c.subscriber_id == late)
    with store.engine.begin() as conn:
        conn.execute(update(deliveries).where(mine).values(status="leased", lease_owner="elsewhere:1",
                                                           lease_expires=datetime(2026, 12, 31, tzinfo=UTC)))
    held = commands.digest("send", "-c", str(config), "--date", "2026-11-29", "--now", "2026-11-29T21:20:00+01:00")
    assert held.returncode == 0, held.stdout + held.stderr
    week_key = edition_key(load(config).newsletter.list_id, DAYS[-1], rhythm=WEEKLY)
    with store.engine.begin() as conn:
        assert conn.execute(select(deliveries.c.status).where(deliveries.c.edition == week_key,
                                                              deliveries.c.subscriber_id == late)).first() is None
        conn.execute(update(deliveries).where(mine).values(status="sent", lease_owner=None, lease_expires=None))
    again = commands.digest("send", "-c", str(config), "--date", "2026-11-29", "--now", "2026-11-29T21:30:00+01:00")
    assert again.returncode == 0, again.stdout + again.stderr
    # … and that reader is on the record as such: the next run finds nothing new, and reads no source.
    rehearsal = commands.digest("send", "-c", str(config), "--date", "2026-11-29", "--now", "2026-11-29T21:45:00+01:00",
                                "--dry-run")
    # (the dry run's ledger counts the week's rows too: 3 daily readers and 3 weekly ones sent)
    assert "would send 0: 6 sent already, 0 due later, 0 new readers" in rehearsal.stdout, rehearsal.stdout
    last = commands.digest("send", "-c", str(config), "--date", "2026-11-29", "--now", "2026-11-29T22:00:00+01:00")
    assert last.returncode == 0, last.stdout + last.stderr
    sunday = edition_key(load(config).newsletter.list_id, DAYS[-1])
    # The queue said it all: no source read, no week made again.
    assert last.stdout.splitlines() == [f"Nothing new to send: edition {sunday} has gone to 6 subscribers already."]
    yield week, config, store
    store.close()


def received(folder: Path) -> dict[str, list[tuple[str, bytes]]]:
    """Each reader's messages in the outbox: (edition folder, message), in the order of the days."""
    out: dict[str, list[tuple[str, bytes]]] = {email: [] for email in READERS}
    for edition in sorted(folder.iterdir()):
        for path in sorted(edition.glob("*.eml")):
            data = path.read_bytes()
            out[parse(data)["To"].addresses[0].addr_spec].append((edition.name, data))
    return out


def test_a_week_of_rhythms(week_run: tuple[Week, Path, Store]) -> None:
    week, config, store = week_run
    got = received(config.parent / "outbox")

    # Counts: a daily reader every day, a weekly reader on Sunday only, the switcher Monday, Tuesday, Sunday.
    assert [len(got[e]) for e in ("daily-fr@example.com", "daily-en@example.com", "late@example.com")] == [7, 7, 7]
    assert not [edition for edition, _ in got["late@example.com"] if "-week-" in edition]
    assert [len(got[e]) for e in ("weekly-fr@example.com", "weekly-ar@example.com")] == [1, 1]
    switcher = [edition for edition, _ in got["switcher@example.com"]]
    assert len(switcher) == 3 and switcher[0].endswith("2026-11-23") and switcher[1].endswith("2026-11-24")
    assert "-week-2026-11-29" in switcher[2]

    # Never the same story twice, whichever the rhythm: a correction published again the next day, and
    # the agency's copies (the same URL with tracking, the same title without a URL), come once.
    for email, messages in got.items():
        seen = Counter(story for _, data in messages for story in stories_in(data))
        assert not [s for s, n in seen.items() if n > 1], email
        texts = plain("".join(message_parts(data)[0] for _, data in messages))
        for repeat in week.repeats:
            assert texts.count(repeat.title) <= 1, (email, repeat.title)

    # The daily reader of every rubric got every story of the week, each in its day's edition.
    daily = {s for _, data in got["daily-fr@example.com"] for s in stories_in(data)}
    assert daily == {(s.day.isoformat(), str(s.number + 1)) for s in week.site}

    # The weekly reader of every rubric: the week's stories from all seven days, the week's leads on top.
    (edition, data), = got["weekly-fr@example.com"]
    assert edition.endswith("-week-2026-11-29")
    weekly = stories_in(data)
    assert {day for day, _ in weekly} == {d.isoformat() for d in DAYS}
    message = parse(data)
    assert message["Subject"].startswith("La semaine du 23 au 29 novembre — ")
    text, html = message_parts(data)
    assert "La semaine du 23 au 29 novembre" in text.splitlines()[1]
    leads = re.findall(r"^== À la une[^\n]*==\s*\n\s*([^\r\n]+)", plain(text), re.M)
    featured = {s.title for s in week.site if s.featured}
    assert len(leads) == 3 and set(leads) <= featured  # [ranking] weekly_leads, of the week's featured articles

    # The switcher's week holds none of Monday's and Tuesday's stories (they read them), the rest of the week.
    (_, first), (_, second), (_, sunday) = got["switcher@example.com"]
    theirs = stories_in(sunday)
    assert theirs and not theirs & (stories_in(first) | stories_in(second))
    assert {day for day, _ in theirs} >= {d.isoformat() for d in DAYS[2:]}
    assert stories_in(first) & weekly  # … some of which the other weekly readers do get

    # The weekly email's size and checks, as enqueued, for every variant.
    settings = load(config)
    editions = Editions(store)
    frozen = editions.open_edition(settings.newsletter.list_id, DAYS[-1], WEEKLY)
    assert frozen is not None and frozen.edition.first == DAYS[0]
    for rendered in editions.variants(frozen).values():
        assert rendered.html_bytes <= settings.layout.budget_bytes
        assert not checks.failed(checks.run(rendered)), rendered.variant

    # The store: one row per story, the corrections replaced in place (their new title, revision 2).
    with store.engine.connect() as conn:
        rows = conn.execute(select(items.c.url, items.c.title, items.c.revision)).all()
    assert len(rows) == len(week.site)
    by_url = {url: (title, revision) for url, title, revision in rows}
    for url, title in week.corrected.items():
        assert by_url[url] == (title, 2)

    # `digest status` on Sunday shows both editions (and the switcher's part of the week), and the reader
    # who had read the whole week already among the week's rows.
    status = commands.digest("status", "-c", str(config), "--date", "2026-11-29")
    assert status.returncode == 0
    assert "-2026-11-29 (open" in status.stdout and "-week-2026-11-29 (open" in status.stdout
    week_status = status.stdout[status.stdout.index("-week-2026-11-29 (open"):]
    assert re.search(r"^  unneeded +1$", week_status, re.M), status.stdout


def test_items_gathers_lists_and_searches_the_store(tmp_path: Path) -> None:
    week = Week.write(tmp_path)
    config = str(tmp_path / "digest.toml")
    for day in DAYS[:3]:
        done = commands.digest("items", "gather", "-c", config, "--date", day.isoformat())
        assert done.returncode == 0, done.stderr
    again = commands.digest("items", "gather", "-c", config, "--date", DAYS[2].isoformat())
    assert again.stdout.strip() == "2026-11-25: 0 new stories kept, 0 corrected, 14 known already"
    found = commands.digest("items", "list", "-c", config, "--search", "CORRIGE", "--format", "json")
    assert found.returncode == 0, found.stderr
    listed = json.loads(found.stdout)
    corrected = [title for url, title in week.corrected.items() if url.split("/")[3] in ("2026-11-23", "2026-11-24")]
    assert sorted(i["title"] for i in listed) == sorted(corrected)
    assert all(i["revision"] == 2 for i in listed)
    one_day = commands.digest("items", "list", "-c", config, "--date", "2026-11-24", "--limit", "1000")
    assert one_day.returncode == 0 and len(one_day.stdout.splitlines()) == len(week.stories(DAYS[1]))
    assert "36 stories in the store, 2026-11-23 to 2026-11-25" in one_day.stderr


def test_a_past_day_and_a_week_are_made_again_from_the_store_and_old_stories_pruned(tmp_path: Path) -> None:
    week = Week.write(tmp_path)
    config = str(tmp_path / "digest.toml")
    for day in DAYS[:3]:
        assert commands.digest("items", "gather", "-c", config, "--date", day.isoformat()).returncode == 0
    (tmp_path / "site.xml").unlink()  # the sources are gone: the store is enough
    monday = commands.digest("build", "-c", config, "--date", "2026-11-23", "--from-store", "--out", str(tmp_path / "mon"))
    assert monday.returncode == 0, monday.stderr
    html = plain((tmp_path / "mon" / "digest.html").read_text(encoding="utf-8"))
    corrected = next(title for url, title in week.corrected.items() if "/2026-11-23/" in url)
    assert corrected in html  # the story as last corrected (on Tuesday)
    assert len(set(STORY.findall(html))) == len(week.stories(DAYS[0]))
    made = commands.digest("build", "-c", config, "--date", "2026-11-25", "--week", "--out", str(tmp_path / "week"))
    assert made.returncode == 0, made.stderr
    assert "Edition of La semaine du 19 au 25 novembre" in made.stdout
    assert (tmp_path / "archive" / "week-2026-11-25.html").is_file()

    settings = load(tmp_path / "digest.toml")
    store = Store.open(settings.database)
    kept = ItemStore(store, settings.newsletter.list_id)
    assert kept.prune(date(2026, 12, 3), keep_days=8) == len(week.stories(DAYS[0])) * 2  # Monday's and Tuesday's
    assert kept.count() == (len(week.stories(DAYS[2])), DAYS[2], DAYS[2])
    store.close()
