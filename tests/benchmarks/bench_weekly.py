"""Benchmark of the weekly edition (issue 15): made from a store holding a year of a busy newsroom's items.

Run on purpose (pytest does not collect it):

    python tests/benchmarks/bench_weekly.py [--items 100000] [--readers 1000] [--engine sqlite|postgresql] [--runs 3]

A fresh database is filled, by bulk INSERTs, with --items stored items at --per-day a day (274: 100,000
over a year) ending on Saturday 28 November 2026: briefs and articles (one in three) over the example
newsroom's rubrics, three featured a day, each kept as `digest items gather` keeps it (its content
from digest.core.frozen); and a daily edition a day with what it carried (edition_items). --readers
weekly readers (Sunday, the newsroom's weekly day) take 20 variants in turn (3 languages × rubric
choices). Then, each figure in a process of its own (time; peak memory, its max RSS, imports included):

    (a) make_week of the last week in the store (7 × 274 items ranked), in a store of 10,000 items and in
        one of --items: the same week, a longer history — its cost does not grow with the store
    (b) `digest send --enqueue-only --date 2026-11-29` (a Sunday) for the weekly readers: the day's 274
        items (a feed of that day) kept, the day's edition frozen, the week made, frozen and rendered
        for every variant, a row per reader
    (c) the reference: the same command, on a copy of the same database, its readers daily: the day's
        edition frozen and rendered for every variant, a row per reader — a daily day's cost

(b) and (c) each start from a fresh copy of the filled database. Timings are medians of --runs runs,
interleaved; the load (`uptime`) is printed. At the end, the figures as a Markdown table.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

# The tests' shared helpers (tests/support), and the checkout's packages, wherever this is run from.
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

import psycopg  # noqa: E402
from reference import Checkout, Ran, fill, median, uptime  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from digest.core import frozen  # noqa: E402
from digest.core.database import database_url  # noqa: E402
from digest.core.model import Edition, Item  # noqa: E402
from digest.core.text import fold  # noqa: E402
from digest.delivery.editions import edition_key  # noqa: E402
from digest.delivery.items import identity  # noqa: E402
from digest.delivery.schema import edition_items, editions, items  # noqa: E402

from support.databases import SERVER, fresh_postgres  # noqa: E402
from support.paths import EXAMPLES  # noqa: E402

HERE = Checkout.this()
ZONE = ZoneInfo("Africa/Casablanca")
SUNDAY = date(2026, 11, 29)  # the weekly day benchmarked; the store ends the day before
LIST_ID = "quotidien.lequotidien.example.ma"
RUBRICS = ["politique", "economie", "international", "societe", "culture", "sport", "tech"]
WORDS = ["le port", "le budget", "le stade", "la réforme", "le festival", "le barrage", "la startup", "l’élection",
         "la récolte", "le tramway", "l’université", "les exportations", "l’hôpital", "le sommet", "le musée"]
PLACES = ["Rabat", "Casablanca", "Tanger", "Fès", "Agadir", "Oujda", "Marrakech", "Laâyoune", "Meknès", "Tétouan"]
SITE = "https://lequotidien.example.ma"


def day_items(day: date, per_day: int) -> list[Item]:
    """A day of the newsroom: `per_day` items from 06:00 on, one in three an article, three featured."""
    out = []
    for n in range(per_day):
        rubric = RUBRICS[n % len(RUBRICS)]
        title = (f"{PLACES[(n + day.toordinal()) % len(PLACES)]} : {WORDS[(n * 7 + day.day) % len(WORDS)]}, "
                 f"dépêche {n + 1} du {day.isoformat()} sur la rubrique {rubric}")
        article = n % 3 == 0
        body = tuple(f"{title}. Paragraphe {p + 1} : des faits, des chiffres et ce qu'en disent les acteurs." for p in range(3))
        out.append(Item(kind="article" if article else "brief", title=title,
                        published=datetime(day.year, day.month, day.day, 6, tzinfo=ZONE) + timedelta(minutes=(n * 211) % 960),
                        source="À la une" if n % 90 == 0 else "Le Quotidien", url=f"{SITE}/{day.isoformat()}/{n + 1}",
                        body=body if article else (), summary="" if article else f"Résumé de la dépêche {n + 1}.",
                        category=rubric, featured=n % 90 == 0, lang="fr"))
    return out


def fill_store(database: str, count: int, per_day: int) -> None:
    """`count` stored items ending on the Saturday, a daily edition a day and what it carried."""
    HERE.make_store(database)
    engine = create_engine(database_url(database))
    days = max(1, count // per_day)
    last = SUNDAY - timedelta(days=1)
    stamp = datetime(2026, 11, 1, tzinfo=UTC)
    empty = frozen.dumps(Edition(date=last, timezone="Africa/Casablanca", leads=(), sections=()))
    with engine.begin() as conn:
        rows, carried, made = [], [], []
        for i in range(days):
            day = last - timedelta(days=days - 1 - i)
            key = edition_key(LIST_ID, day)
            made.append(dict(key=key, list_id=LIST_ID, day=day, revision=1, status="open", enqueued_at=stamp,
                             date_header=stamp, slot="s" * 20, content=empty, rhythm="daily", part=""))
            for item in day_items(day, per_day if i else count - per_day * (days - 1)):  # the oldest day: the rest
                story = identity(LIST_ID, item)
                rows.append(dict(key=story, list_id=LIST_ID, day=day, published=item.published, kind=item.kind,
                                 rubric=item.category, score=1.0, source=item.source, url=item.url, title=item.title,
                                 folded=fold(f"{item.title} {item.excerpt}"), content=frozen.item_dumps(item),
                                 revision=1, kept_at=stamp, updated_at=stamp))
                carried.append(dict(edition=key, variant="fr|", item=story))
            if len(rows) >= 5000 or i == days - 1:
                conn.execute(insert(items), rows)
                conn.execute(insert(edition_items), carried)
                rows, carried = [], []
        conn.execute(insert(editions), made)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()


def add_readers(database: str, readers: int) -> None:
    fill(database, readers)
    engine = create_engine(database_url(database))
    with engine.begin() as conn:  # weekly, on the newsroom's day (weekday NULL)
        conn.execute(text("UPDATE subscribers SET cadence = 'weekly', weekday = NULL"))
    engine.dispose()


def rss(chosen: list[Item]) -> str:
    entries = []
    for item in chosen:
        body = f"<content:encoded>{escape(''.join(f'<p>{p}</p>' for p in item.body))}</content:encoded>" if item.body else ""
        entries.append(f"<item><title>{escape(item.title)}</title><link>{item.url}</link><guid>{item.url}</guid>"
                       f"<category>{item.category}</category><pubDate>{format_datetime(item.published)}</pubDate>"
                       f"<description>{escape(item.summary)}</description>{body}</item>")
    return ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
            f"<channel><title>Le Quotidien</title><link>{SITE}</link><description>Le fil</description>"
            + "\n".join(entries) + "</channel></rss>\n")


def newsroom(folder: Path, per_day: int) -> Path:
    """examples/digest.toml in `folder`, its sources the Sunday's two feeds (the site's, the featured)."""
    sunday = day_items(SUNDAY, per_day)
    (folder / "site.xml").write_text(rss([i for i in sunday if not i.featured]), encoding="utf-8")
    (folder / "features.xml").write_text(rss([i for i in sunday if i.featured]), encoding="utf-8")
    head = (EXAMPLES / "digest.toml").read_text(encoding="utf-8").partition("# The sources of the day.")[0]
    config = folder / "digest.toml"
    config.write_text(head + (
        '[[sources]]\nname = "Le Quotidien"\npath = "site.xml"\nkind = "feed"\nlang = "fr"\n\n'
        '[[sources]]\nname = "À la une"\npath = "features.xml"\nkind = "feed"\nlang = "fr"\nfeatured = true\n'),
        encoding="utf-8")
    return config


class Databases:
    """Filled databases of the chosen engine, and fresh copies of them: a file copy for SQLite, a
    database made from it as a TEMPLATE for PostgreSQL."""

    def __init__(self, engine: str, folder: Path) -> None:
        self.engine, self.folder, self.made = engine, folder, 0

    @contextmanager
    def new(self) -> Iterator[str]:
        if self.engine == "sqlite":
            self.made += 1
            yield str(self.folder / f"store-{self.made}.db")
        else:
            with fresh_postgres() as url:
                yield url

    @contextmanager
    def copy(self, database: str) -> Iterator[str]:
        if self.engine == "sqlite":
            self.made += 1
            path = self.folder / f"copy-{self.made}.db"
            shutil.copyfile(database, path)
            try:
                yield str(path)
            finally:
                path.unlink()
            return
        name = database.rsplit("/", 1)[1]
        with fresh_postgres() as url, psycopg.connect(SERVER, autocommit=True) as admin:
            copy = url.rsplit("/", 1)[1]
            admin.execute(f'DROP DATABASE "{copy}"')
            admin.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"')
            yield url


MAKE_WEEK = """
import sys, time
from datetime import date
from digest.core.config import load
from digest.delivery.rhythms import make_week
from subscribers.store import Store
settings = load(sys.argv[1])
store = Store.open(sys.argv[2], create=False)
day = date.fromisoformat(sys.argv[3])
def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(field + ":")) / 1024
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as clear:  # the peak (VmHWM) starts again from here
    clear.write("5")
t0 = time.perf_counter()
week = make_week(settings, store, day)
elapsed = time.perf_counter() - t0
print(elapsed, week.stories, len(week.edition.items), before, status("VmHWM"))
"""


def make_week_once(config: Path, database: str) -> tuple[float, int, int, float, float]:
    """make_week of the week ending on the Saturday: seconds, stories read, items ranked, and the process's
RSS before and its peak during make_week (MiB; Linux's /proc/self/clear_refs resets the peak)."""
    ran = HERE.run("-c", MAKE_WEEK, str(config), database, (SUNDAY - timedelta(days=1)).isoformat())
    if ran.returncode != 0:
        sys.exit(ran.stderr)
    seconds, stories, shown, before, peak = ran.stdout.split()
    return float(seconds), int(stories), int(shown), float(before), float(peak)


def enqueue_once(config: Path, database: str) -> Ran:
    ran = HERE.measure("send", "-c", str(config), "--database", database, "--date", SUNDAY.isoformat(),
                       "--now", f"{SUNDAY}T20:00:00+01:00", "--enqueue-only")
    if ran.code != 0:
        sys.exit(f"digest send --enqueue-only failed:\n{ran.output}")
    return ran


def set_daily(database: str) -> None:
    engine = create_engine(database_url(database))
    with engine.begin() as conn:
        conn.execute(text("UPDATE subscribers SET cadence = 'daily'"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000, help="the smaller store of (a) (default 10,000)")
    parser.add_argument("--per-day", type=int, default=274)
    parser.add_argument("--readers", type=int, default=1_000)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.engine}: stores of {args.small:,} and {args.items:,} items ({args.per_day}/day), "
          f"{args.readers:,} weekly readers, {args.runs} runs per figure (median)")
    print(uptime())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = newsroom(folder, args.per_day)
        dbs = Databases(args.engine, folder)
        with dbs.new() as small, dbs.new() as big:
            for database, count in ((small, args.small), (big, args.items)):
                t0 = time.perf_counter()
                fill_store(database, count, args.per_day)
                add_readers(database, args.readers)
                print(f"filled a store of {count:,} items in {time.perf_counter() - t0:.1f} s")
            weeks: dict[int, list[tuple[float, int, int, float, float]]] = {args.small: [], args.items: []}
            weekly: list[Ran] = []
            daily: list[Ran] = []
            for run in range(args.runs):
                for database, count in ((small, args.small), (big, args.items)):
                    weeks[count].append(make_week_once(config, database))
                with dbs.copy(big) as copy:
                    weekly.append(enqueue_once(config, copy))
                with dbs.copy(big) as copy:
                    set_daily(copy)
                    daily.append(enqueue_once(config, copy))
                print(f"run {run + 1}: make_week {weeks[args.small][-1][0]:.2f} s / {weeks[args.items][-1][0]:.2f} s, "
                      f"weekly day {weekly[-1].seconds:.1f} s, daily day {daily[-1].seconds:.1f} s")
            print(uptime())
            print(f"\nthe week: {weeks[args.items][0][1]:,} stories read, {weeks[args.items][0][2]:,} ranked; "
                  f"the enqueue's output (weekly day):\n{weekly[0].output}")
    table(args, weeks, weekly, daily)


def table(args: argparse.Namespace, weeks: dict[int, list[tuple[float, int, int, float, float]]],
          weekly: list[Ran], daily: list[Ran]) -> None:
    print(f"| {args.engine}, {args.readers:,} readers (20 variants) | time (median) | CPU | peak RSS |")
    print("|---|---:|---:|---:|")
    for count, samples in weeks.items():
        print(f"| (a) make_week, store of {count:,} items | {median(s[0] for s in samples):.2f} s | | "
              f"{max(s[4] for s in samples):.0f} MiB (+{max(s[4] - s[3] for s in samples):.0f} MiB over the process before) |")
    for label, runs in (("(b) weekly day: `send --enqueue-only` (day + week)", weekly),
                        ("(c) daily day: `send --enqueue-only` (reference)", daily)):
        print(f"| {label} | {median(r.seconds for r in runs):.2f} s | {median(r.cpu for r in runs):.2f} s | "
              f"{max(r.rss for r in runs):.0f} MiB |")
    ratio = median(r.seconds for r in weekly) / median(r.seconds for r in daily)
    cpu = median(r.cpu for r in weekly) / median(r.cpu for r in daily)
    memory = max(r.rss for r in weekly) / max(r.rss for r in daily)
    print(f"| weekly day / daily day | × {ratio:.2f} | × {cpu:.2f} | × {memory:.2f} |")
    growth = median(s[0] for s in weeks[args.items]) / median(s[0] for s in weeks[args.small])
    print(f"| make_week, store × {args.items / args.small:.0f} | × {growth:.2f} | | |")


if __name__ == "__main__":
    main()
