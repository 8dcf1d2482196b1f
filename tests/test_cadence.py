"""Each reader's rhythm, the subscriber's side (issue 15, point 2): daily (the default) or weekly on a day
they choose, through the CSV, `subscribers add`, `subscribers list`, the preferences page of a running
`digest serve` and the sign-up form; every change on the consent record."""
from __future__ import annotations

import csv
import io
import json
import re

import httpx
import pytest

from digest.core.errors import InvalidSubscriber
from digest.web.serve import create_app
from subscribers.csvio import export_csv, import_csv
from subscribers.store import Store

from support import cli as commands
from support.newsroom import PREFIX, Newsroom, sid
from support.ports import PATIENCE
from support.served import serve
from support.signup import FORM, client, confirm_path, csrf_of, letters, signup_room, stamp_of

RUBRICS = {"actualite", "economie", "sport"}


@pytest.fixture
def store(tmp_path):
    opened = Store.open(tmp_path / "digest.db")
    yield opened
    opened.close()


def rhythms(store: Store) -> dict[str, tuple[str, int | None]]:
    return {s.email: (s.cadence, s.weekday) for s in store.iter_subscribers()}


# -- the store and the CSV ------------------------------------------------------------------------------

def test_a_reader_is_daily_unless_they_choose_and_a_day_alone_means_weekly(store):
    store.add("daily@example.ma")
    store.add("weekly@example.ma", cadence="WEEKLY", weekday="Dimanche")
    store.add("friday@example.ma", weekday="friday")  # a day without a cadence: weekly on that day
    store.add("kept@example.ma", cadence="daily", weekday="lundi")  # daily, with the day they will get once weekly
    store.add("newsroom@example.ma", cadence="weekly")  # no day: the newsroom's [delivery] weekly_day
    assert rhythms(store) == {"daily@example.ma": ("daily", None), "weekly@example.ma": ("weekly", 6),
                              "friday@example.ma": ("weekly", 4), "kept@example.ma": ("daily", 0),
                              "newsroom@example.ma": ("weekly", None)}
    for bad, message in ((dict(cadence="monthly"), "unknown cadence 'monthly'"), (dict(weekday="sun"), "unknown weekday 'sun'"),
                         (dict(weekday="7"), "unknown weekday '7'")):
        with pytest.raises(InvalidSubscriber, match=message):
            store.add("bad@example.ma", **bad)
    assert store.get("bad@example.ma") is None


def test_a_change_of_rhythm_is_on_the_consent_record_and_a_day_can_go_back_to_the_newsroom_s(store):
    store.add("salma@example.ma")
    assert store.upsert("salma@example.ma", cadence="weekly", weekday="saturday").outcome == "updated"
    assert store.upsert("salma@example.ma", cadence="weekly").outcome == "unchanged"  # the day stays
    assert store.upsert("salma@example.ma", weekday="").outcome == "updated"  # back to the newsroom's day
    assert store.upsert("salma@example.ma", cadence="daily").outcome == "updated"
    assert [(e.event, e.detail) for e in store.history("salma@example.ma")] == [
        ("added", {"locale": "fr", "rubrics": "", "status": "active", "timezone": "UTC"}),
        ("changed", {"cadence": "weekly", "weekday": 5}),
        ("changed", {"weekday": None}),
        ("changed", {"cadence": "daily"})]
    assert rhythms(store)["salma@example.ma"] == ("daily", None)


CSV = """email,name,cadence,weekday
salma@example.ma,Salma,weekly,sunday
omar@example.ma,Omar,Weekly,
nadia@example.com,Nadia,,VENDREDI
karim@example.ma,Karim,fortnightly,sunday
leila@example.ma,Leila,daily,sonntag
hicham@example.ma,Hicham,daily,mercredi
sara@example.ma,Sara,,
"""


def test_the_csv_imports_cadence_and_weekday_reports_bad_ones_by_line_and_exports_them_back(store, tmp_path):
    report = import_csv(store, io.StringIO(CSV), RUBRICS)
    assert (report.created, report.bad) == (5, 2)
    assert report.errors == [
        (5, "unknown cadence 'fortnightly' (use one of daily, weekly)"),
        (6, "unknown weekday 'sonntag' (use a day's full name in English or French, such as sunday or dimanche)")]
    assert rhythms(store) == {"salma@example.ma": ("weekly", 6), "omar@example.ma": ("weekly", None),
                              "nadia@example.com": ("weekly", 4), "hicham@example.ma": ("daily", 2),
                              "sara@example.ma": ("daily", None)}
    [imported] = [e.detail for e in store.history("salma@example.ma")]
    assert imported["cadence"] == "weekly" and imported["weekday"] == 6

    out = io.StringIO()
    assert export_csv(store, out) == 5
    rows = {row["email"]: (row["cadence"], row["weekday"]) for row in csv.DictReader(io.StringIO(out.getvalue()))}
    assert rows == {"salma@example.ma": ("weekly", "sunday"), "omar@example.ma": ("weekly", ""),
                    "nadia@example.com": ("weekly", "friday"), "hicham@example.ma": ("daily", "wednesday"),
                    "sara@example.ma": ("daily", "")}
    again = import_csv(store, io.StringIO(out.getvalue()), RUBRICS)  # the same file again: nothing changes
    assert (again.created, again.updated, again.unchanged, again.bad) == (0, 0, 5, 0)
    empty = Store.open(tmp_path / "other.db")
    assert import_csv(empty, io.StringIO(out.getvalue()), RUBRICS).created == 5
    assert rhythms(empty) == rhythms(store)
    empty.close()


def test_an_empty_cell_keeps_the_reader_s_rhythm_and_a_file_without_the_columns_too(store):
    store.add("salma@example.ma", cadence="weekly", weekday="tuesday")
    import_csv(store, io.StringIO("email,cadence,weekday\nsalma@example.ma,,\n"), RUBRICS)
    import_csv(store, io.StringIO("email,name\nsalma@example.ma,Salma\n"), RUBRICS)
    assert rhythms(store)["salma@example.ma"] == ("weekly", 1)
    report = import_csv(store, io.StringIO("email,rythme,jour\nsalma@example.ma,quotidien,dimanche\n"), RUBRICS)
    assert report.errors == [(2, "unknown cadence 'quotidien' (use one of daily, weekly)")]  # French headers read


# -- the command line ---------------------------------------------------------------------------------

def test_subscribers_add_weekly_on_sunday_and_list_shows_the_rhythm(tmp_path):
    room = Newsroom(tmp_path, subscribers=1)

    def run(*args: str):
        return commands.digest("subscribers", *args, "-c", str(room.config))

    added = run("add", "nadia@example.com", "--cadence", "weekly", "--weekday", "sunday")
    assert added.returncode == 0, added.stderr
    assert added.stdout.rstrip().endswith("rhythm: weekly:sunday)")
    newsroom_day = run("add", "omar@example.com", "--cadence", "WEEKLY")
    assert "rhythm: weekly:(sunday))" in newsroom_day.stdout  # [delivery] weekly_day, sunday by default
    reader = room.store.get("nadia@example.com")
    assert (reader.cadence, reader.weekday) == ("weekly", 6)
    assert room.store.history("nadia@example.com")[0].detail["cadence"] == "weekly"

    table = run("list").stdout.splitlines()
    assert table[0].split()[6] == "rhythm"
    assert [line.split()[6] for line in table[1:]] == ["daily", "weekly:sunday", "weekly:(sunday)"]
    records = json.loads(run("list", "--format", "json").stdout)
    assert [(r["cadence"], r["weekday"]) for r in records] == [("daily", None), ("weekly", "sunday"), ("weekly", None)]
    as_csv = run("list", "--format", "csv").stdout
    assert as_csv.splitlines()[0].endswith(",delivery_time,cadence,weekday")
    assert as_csv.splitlines()[2].endswith(",weekly,sunday")

    for args, message in ((["--weekday", "sun"], "unknown weekday 'sun'"), (["--cadence", "monthly"], "monthly")):
        refused = run("add", "bad@example.com", *args)
        assert refused.returncode == 2 and message in refused.stderr and "Traceback" not in refused.stderr
    assert room.store.get("bad@example.com") is None


# -- the preferences page ------------------------------------------------------------------------------

def chosen(html: str) -> tuple[str, str]:
    cadence = re.search(r'name="cadence" value="(\w+)" id="cadence-\w+" checked', html).group(1)
    day = re.search(r'<select name="weekday".*?<option value="(\w*)" selected', html, re.S).group(1)
    return cadence, day


def test_a_reader_switches_to_weekly_on_the_preferences_page_of_a_running_server(tmp_path):
    room = Newsroom(tmp_path, subscribers=2)
    path = f"{PREFIX}/preferences/{room.tokens.make(sid(room, 1))}"
    server = serve(room.config)
    try:
        with httpx.Client(base_url=server.base, timeout=PATIENCE) as http:
            page = http.get(path).text
            assert chosen(page) == ("daily", "")
            assert "The newsroom’s day (Sunday)" in page and ">Wednesday</option>" in page  # an English reader
            form = {"csrf": csrf_of(page), "locale": "en", "hour": "", "action": "save",
                    "rubric": sorted(room.store.get(room.emails[1]).rubrics)}
            saved = http.post(path, data={**form, "cadence": "weekly", "weekday": "wednesday"},
                              headers={"User-Agent": "Firefox/140"})
            assert saved.status_code == 200 and 'id="notice"' in saved.text
            assert chosen(saved.text) == chosen(http.get(path).text) == ("weekly", "wednesday")
            bad = http.post(path, data={**form, "cadence": "hourly", "weekday": "wednesday"})
            assert bad.status_code == 400
            assert http.post(path, data={**form, "cadence": "weekly", "weekday": "someday"}).status_code == 400
            in_arabic = http.post(path, data={**form, "locale": "ar", "cadence": "daily", "weekday": "wednesday"})
            assert "الأربعاء" in in_arabic.text and chosen(in_arabic.text) == ("daily", "wednesday")
    finally:
        server.stop()
    reader = room.store.get(room.emails[1])
    assert (reader.cadence, reader.weekday, reader.locale) == ("daily", 2, "ar")  # the day kept for later
    changes = [(e.event, e.channel, e.detail) for e in room.store.history(room.emails[1])][1:]
    assert changes == [("changed", "preferences", {"cadence": "weekly", "weekday": 2}),
                       ("changed", "preferences", {"cadence": "daily", "locale": "ar"})]
    assert room.store.history(room.emails[1])[1].user_agent == "Firefox/140"


def test_a_page_without_the_rhythm_fields_keeps_the_reader_s(tmp_path):
    room = Newsroom(tmp_path, subscribers=1)
    room.store.upsert(room.emails[0], cadence="weekly", weekday="friday")
    path = f"{PREFIX}/preferences/{room.tokens.make(sid(room, 0))}"
    http = client(create_app(room.settings, room.store))
    csrf = csrf_of(http.get(path).text)
    assert http.post(path, data={"csrf": csrf, "locale": "en", "action": "save"}).status_code == 200  # a theme's older page
    reader = room.store.get(room.emails[0])
    assert (reader.cadence, reader.weekday, reader.locale) == ("weekly", 4, "en")
    mine = http.post(path, data={"csrf": csrf, "action": "download"}).json()["subscriber"]  # "download my data"
    assert (mine["cadence"], mine["weekday"]) == ("weekly", "friday")


# -- the sign-up form ------------------------------------------------------------------------------------

def test_a_weekly_sign_up_is_applied_when_it_is_confirmed(tmp_path):
    room = signup_room(tmp_path)
    http = client(create_app(room.settings, room.store), "203.0.113.9")
    form = http.get(FORM).text
    assert 'name="cadence" value="weekly"' in form and "Le jour de la rédaction (dimanche)" in form
    data = {"email": "nadia@example.net", "locale": "en", "stamp": stamp_of(form), "website": "",
            "cadence": "weekly", "weekday": "saturday"}
    assert http.post(FORM, data=data).status_code == 200
    pending = room.store.get("nadia@example.net")
    assert (pending.status, pending.cadence, pending.weekday) == ("pending", "weekly", 5)
    assert room.store.history("nadia@example.net")[0].detail["cadence"] == "weekly"

    [mail] = letters(tmp_path)
    link = confirm_path(mail)
    csrf = csrf_of(http.get(link).text)
    assert http.post(link, data={"csrf": csrf}).status_code == 200
    reader = room.store.get("nadia@example.net")
    assert (reader.status, reader.cadence, reader.weekday) == ("active", "weekly", 5)
    confirmed = room.store.history("nadia@example.net")[-1]
    assert confirmed.event == "confirmed" and (confirmed.detail["cadence"], confirmed.detail["weekday"]) == ("weekly", 5)


def test_a_sign_up_that_left_comes_back_weekly_only_once_confirmed_and_a_forged_cadence_is_refused(tmp_path):
    room = signup_room(tmp_path)
    room.store.add("left@example.net", status="unsubscribed")
    http = client(create_app(room.settings, room.store), "203.0.113.9")
    data = {"email": "left@example.net", "locale": "fr", "stamp": stamp_of(http.get(FORM).text), "website": "",
            "cadence": "weekly", "weekday": ""}
    http.post(FORM, data=data)
    assert (room.store.get("left@example.net").cadence, room.store.get("left@example.net").status) == ("daily", "unsubscribed")
    [mail] = letters(tmp_path)
    link = confirm_path(mail)
    http.post(link, data={"csrf": csrf_of(http.get(link).text)})
    reader = room.store.get("left@example.net")
    assert (reader.status, reader.cadence, reader.weekday) == ("active", "weekly", None)

    forged = {**data, "email": "forged@example.net", "stamp": stamp_of(http.get(FORM).text), "cadence": "hourly"}
    assert http.post(FORM, data=forged).status_code == 200  # the same page as any other answer …
    assert room.store.get("forged@example.net") is None and len(letters(tmp_path)) == 1  # … and nothing done
