"""examples/week, run as its README says: a week of the newsroom day by day (`digest send --date D
--now D 20:00`), its readers imported from its subscribers.csv, daily and weekly ones. What each reader
received is read from the outbox's messages. The folder is copied first: the checkout stays clean."""
from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from pathlib import Path

from support import cli as commands
from support.mail import message_parts, parse
from support.paths import EXAMPLES

DAYS = range(23, 30)
STORY = re.compile(r"https://lequotidien\.example\.ma/2026-11-\d\d/dossier-\d+")


def test_the_example_week(tmp_path: Path) -> None:
    folder = tmp_path / "week"
    shutil.copytree(EXAMPLES / "week", folder, ignore=shutil.ignore_patterns("digest.db*", "digest.key", "outbox", "archive"))
    config = str(folder / "digest.toml")
    with (folder / "subscribers.csv").open(encoding="utf-8") as rows:
        readers = {row["email"]: row for row in csv.DictReader(rows)}
    imported = commands.invoke("subscribers", "import", "-c", config, str(folder / "subscribers.csv"))
    assert imported.exit_code == 0, imported.stdout + imported.stderr
    assert f"{len(readers)} created" in imported.stdout

    for d in DAYS:  # in-process (commands.invoke): seven runs without seven start-ups
        done = commands.invoke("send", "-c", config, "--date", f"2026-11-{d}", "--now", f"2026-11-{d}T20:00:00+01:00")
        assert done.exit_code == 0, done.stdout + done.stderr

    got: dict[str, list[str]] = {email: [] for email in readers}
    stories: dict[str, Counter[str]] = {email: Counter() for email in readers}
    for edition in sorted((folder / "outbox").iterdir()):
        for path in edition.glob("*.eml"):
            data = path.read_bytes()
            email = parse(data)["To"].addresses[0].addr_spec
            got[email].append(edition.name)
            stories[email].update(set(STORY.findall(message_parts(data)[1])))
    for email, seen in stories.items():  # no story twice, whichever the rhythm (the agency's copies included)
        assert seen and max(seen.values()) == 1, email
    weekly = {email for email, row in readers.items() if row["cadence"] == "weekly"}
    assert weekly and len(weekly) < len(readers)
    for email, editions in got.items():
        if email in weekly:  # one message: the week's edition, on the reader's day (Sunday unless they chose one)
            day = "27" if readers[email]["weekday"] == "vendredi" else "29"
            assert editions == [f"quotidien.lequotidien.example.ma-week-2026-11-{day}"], email
        else:  # one a day
            assert editions == [f"quotidien.lequotidien.example.ma-2026-11-{d}" for d in DAYS], email
    assert Counter(len(e) for e in got.values()) == {7: len(readers) - len(weekly), 1: len(weekly)}

    status = commands.invoke("status", "-c", config, "--date", "2026-11-29")
    assert status.exit_code == 0 and "-week-2026-11-29 (open" in status.stdout
    listed = commands.invoke("items", "list", "-c", config, "--limit", "100")
    assert listed.exit_code == 0 and "84 stories in the store" in listed.stdout + listed.stderr
    assert "(corrected ×1, 2026-11-" in listed.stdout
