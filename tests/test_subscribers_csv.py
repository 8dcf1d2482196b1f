"""CSV import and export on real SQLite files: the example list, bad rows by line, Excel's ways, round trip."""
from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.core.errors import CsvError
from subscribers import Store, export_csv, import_csv

from support.paths import EXAMPLES

EXAMPLE = EXAMPLES / "subscribers.csv"
RUBRICS = {"politique", "economie", "international", "societe", "culture", "sport", "tech", "actualite"}

# Each bad row says on which physical line it starts; line 9's quoted name runs over two lines.
BAD = """\
email,name,locale,timezone,rubrics,status,created_at
salma@example.ma,Salma Alaoui,fr,Africa/Casablanca,economie;sport,active,2025-01-14T08:12:00Z
not-an-address,Personne,fr,UTC,,active,
omar@example.ma,Omar,fr,UTC,meteo,active,
nadia@example.com,Nadia,de,Europe/Paris,,active,

SALMA@example.ma,Salma again,fr,UTC,,active,
karim@example.ma,Karim,fr,Mars/Olympus,,active,
"leila@example.ma","Leïla
Benkirane",fr,Europe/Paris,culture,paused,
hicham@example.ma,هشام التازي,ar,Africa/Casablanca,sport|tech,active,2025-03-03
mehdi@example.ma,Mehdi,fr,UTC,,active,yesterday
hélène@example.com,Hélène,fr,Europe/Paris,,active,
"""


def _write(tmp_path: Path, text: str, name: str = "list.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_the_example_list_imports(store):
    report = import_csv(store, EXAMPLE, RUBRICS)
    assert (report.created, report.updated, report.unchanged, report.errors, report.warnings) == (24, 0, 0, [], [])
    assert store.count() == {"active": 21, "unsubscribed": 2, "bounced": 1}
    hicham = store.get("hicham.tazi@example.ma")
    assert (hicham.name, hicham.locale, hicham.rubrics) == ("هشام التازي", "ar", frozenset({"sport", "actualite"}))
    assert hicham.created_at == datetime(2025, 3, 3, 6, 50, tzinfo=UTC)
    assert {s.timezone for s in store.iter_subscribers()} == {"Africa/Casablanca", "Europe/Paris", "America/Montreal"}


def test_importing_twice_changes_nothing(store):
    import_csv(store, EXAMPLE, RUBRICS)
    before = list(store.iter_subscribers())
    report = import_csv(store, EXAMPLE, RUBRICS)
    assert (report.created, report.updated, report.unchanged, report.errors) == (0, 0, 24, [])
    assert list(store.iter_subscribers()) == before  # updated_at included


def test_bad_rows_are_reported_by_line_and_the_good_ones_imported(store, tmp_path):
    report = import_csv(store, _write(tmp_path, BAD), RUBRICS)
    lines = {line: reason for line, reason in report.errors}
    assert sorted(lines) == [3, 4, 5, 7, 8, 9, 12, 13]
    assert "invalid address 'not-an-address'" in lines[3]
    assert "unknown rubric 'meteo'" in lines[4]
    assert "unknown locale 'de'" in lines[5]
    assert "duplicate address salma@example.ma (first on line 2)" in lines[7]
    assert "unknown time zone 'Mars/Olympus'" in lines[8]
    assert lines[9].startswith("unknown status 'paused'")  # the row that starts on line 9 and ends on 10
    assert "invalid created_at 'yesterday'" in lines[12]
    assert "invalid address 'hélène@example.com'" in lines[13]
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert store.get("hicham@example.ma").rubrics == frozenset({"sport", "tech"})
    assert store.get("salma@example.ma").name == "Salma Alaoui"


def test_a_row_may_carry_several_problems(store, tmp_path):
    report = import_csv(store, _write(tmp_path, "email,locale,rubrics\nomar@example.ma,xx,meteo\n"), RUBRICS)
    assert len(report.errors) == 1
    line, reason = report.errors[0]
    assert line == 2 and "unknown locale 'xx'" in reason and "unknown rubric 'meteo'" in reason


def test_no_resubscribe_by_import(store, tmp_path):
    import_csv(store, EXAMPLE, RUBRICS)
    text = "email,status\nkhadija.berrada@example.ma,active\nold.reader@example.org,active\nsalma.alaoui@example.ma,unsubscribed\n"
    report = import_csv(store, _write(tmp_path, text), RUBRICS)
    assert [line for line, _ in report.warnings] == [2, 3]
    assert "stays unsubscribed" in report.warnings[0][1] and "stays bounced" in report.warnings[1][1]
    assert (report.updated, report.unchanged, report.errors) == (1, 2, [])
    assert store.get("khadija.berrada@example.ma").status == "unsubscribed"
    assert store.get("old.reader@example.org").status == "bounced"
    assert store.get("salma.alaoui@example.ma").status == "unsubscribed"


def test_missing_columns_keep_what_the_store_knows(store, tmp_path):
    import_csv(store, EXAMPLE, RUBRICS)
    report = import_csv(store, _write(tmp_path, "name,email\nKarim El Fassi (rédaction),karim.elfassi@example.ma\n"), RUBRICS)
    assert report.updated == 1
    karim = store.get("karim.elfassi@example.ma")
    assert karim.name == "Karim El Fassi (rédaction)"
    assert (karim.locale, karim.rubrics) == ("ar", frozenset({"politique", "international", "economie"}))


def test_defaults_for_new_rows(store, tmp_path):
    import_csv(store, _write(tmp_path, "email,locale\nomar@example.ma,\n"), RUBRICS, "ar", "Africa/Casablanca")
    omar = store.get("omar@example.ma")
    assert (omar.locale, omar.timezone, omar.rubrics, omar.status) == ("ar", "Africa/Casablanca", frozenset(), "active")


def test_bom_and_semicolons_from_excel(store, tmp_path):
    text = 'email;name;rubrics;locale\r\nsalma@example.ma;"Alaoui; Salma";economie sport;FR\r\nomar@example.ma;Omar;;ar\r\n'
    report = import_csv(store, _write(tmp_path, "\ufeff" + text), RUBRICS)
    assert (report.created, report.errors) == (2, [])
    salma = store.get("salma@example.ma")
    assert (salma.name, salma.rubrics, salma.locale) == ("Alaoui; Salma", frozenset({"economie", "sport"}), "fr")


def test_binary_and_text_files_are_accepted(store):
    assert import_csv(store, io.BytesIO(b"\xef\xbb\xbfemail\nomar@example.ma\n")).created == 1
    assert import_csv(store, io.StringIO("\ufeffemail\nsalma@example.ma\n")).created == 1


def test_header_aliases_and_ignored_columns(store, tmp_path):
    report = import_csv(store, _write(tmp_path, "Courriel,Nom,Téléphone\nomar@example.ma,Omar,0600000000\n"), RUBRICS)
    assert report.created == 1 and report.warnings == [(1, "column(s) ignored: Téléphone")]
    assert store.get("omar@example.ma").name == "Omar"


@pytest.mark.parametrize(
    "content, message",
    [
        ("salma@example.ma,Salma\nomar@example.ma,Omar\n", "line 1 is an address, not a header"),
        ("name,locale\nSalma,fr\n", "no email column"),
        ("", "empty file"),
        ("email,name,email\nsalma@example.ma,Salma,x\n", "appears twice"),
    ],
)
def test_a_file_that_cannot_be_read_imports_nothing(store, tmp_path, content, message):
    with pytest.raises(CsvError, match=message):
        import_csv(store, _write(tmp_path, content), RUBRICS)
    assert sum(store.count().values()) == 0


def test_a_file_that_is_not_utf8(store, tmp_path):
    path = _write(tmp_path, "email,name\nhelene@example.com,Hélène\n", encoding="cp1252")
    with pytest.raises(CsvError, match=r"not UTF-8 \(line 2 has the byte 0xe9\)") as caught:
        import_csv(store, path, RUBRICS)
    assert "CSV UTF-8" in str(caught.value) and str(path) in str(caught.value)
    assert sum(store.count().values()) == 0


def test_a_missing_file(store, tmp_path):
    with pytest.raises(CsvError, match="cannot read it"):
        import_csv(store, tmp_path / "nope.csv", RUBRICS)


def test_export_then_import_into_an_empty_store_is_identical(store, tmp_path):
    import_csv(store, EXAMPLE, RUBRICS)
    store.add("omar@exämple.ma", name='Omar "Le Chroniqueur", Casablanca', created_at=datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
              timezone="Asia/Tokyo", delivery_time="06:45")
    store.upsert("salma.alaoui@example.ma", delivery_time="asap")
    out = io.StringIO()
    assert export_csv(store, out) == 25
    text = out.getvalue()
    assert text.splitlines()[0] == "email,name,locale,timezone,rubrics,status,created_at,delivery_time,cadence,weekday"
    assert "karim.elfassi@example.ma,Karim El Fassi,ar,Africa/Casablanca,economie;international;politique,active,2025-02-11T21:05:00Z,,daily,\n" in text
    assert text.endswith(",Asia/Tokyo,,active,2025-01-01T00:00:00.123456Z,06:45,daily,\n")
    assert [line for line in text.splitlines() if line.endswith(",asap,daily,")] == [
        next(line for line in text.splitlines() if line.startswith("salma.alaoui@example.ma,"))]

    empty = Store.open(tmp_path / "other.db")
    report = import_csv(empty, io.StringIO(text), RUBRICS)
    assert (report.created, report.errors, report.warnings) == (25, [], [])

    def fields(s):
        return (s.email, s.name, s.locale, s.timezone, s.rubrics, s.status, s.created_at, s.delivery_time)

    assert [fields(s) for s in empty.iter_subscribers()] == [fields(s) for s in store.iter_subscribers()]
    again = io.StringIO()
    export_csv(empty, again)
    assert again.getvalue() == text


def test_a_delivery_time_that_is_no_hour_is_a_bad_row_and_an_empty_one_keeps_the_reader_s(store, tmp_path):
    text = "email,delivery_time\nsalma@example.ma,09:00\nomar@example.ma,25:00\nnadia@example.com, ASAP \nkarim@example.ma,9h\nleila@example.ma,\n"
    report = import_csv(store, _write(tmp_path, text), RUBRICS)
    assert report.errors == [(3, "invalid delivery time '25:00' (use an hour from 00:00 to 23:59 such as 07:00, or asap)"),
                             (5, "invalid delivery time '9h' (use an hour from 00:00 to 23:59 such as 07:00, or asap)")]
    assert [(s.email, s.delivery_time) for s in store.iter_subscribers()] == [
        ("salma@example.ma", "09:00"), ("nadia@example.com", "asap"), ("leila@example.ma", None)]
    # An empty cell is "not given", as for locale: a reader's own choice is never wiped by a file.
    again = import_csv(store, _write(tmp_path, "email,heure\nsalma@example.ma,\nleila@example.ma,7:30\n"), RUBRICS)
    assert (again.updated, again.unchanged, again.errors) == (1, 1, [])
    assert store.get("salma@example.ma").delivery_time == "09:00" and store.get("leila@example.ma").delivery_time == "07:30"


def test_export_by_status(store):
    import_csv(store, EXAMPLE, RUBRICS)
    out = io.StringIO()
    assert export_csv(store, out, status="unsubscribed") == 2
    assert len(out.getvalue().splitlines()) == 3


def test_a_large_import_is_one_transaction_and_quick(store, tmp_path):
    rows = "".join(f"reader{i:05d}@example.ma,Lecteur {i},fr,Africa/Casablanca,sport;tech\n" for i in range(20_000))
    path = _write(tmp_path, "email,name,locale,timezone,rubrics\n" + rows)
    report = import_csv(store, path, RUBRICS)
    assert report.created == 20_000 and report.errors == []
    assert import_csv(store, path, RUBRICS).unchanged == 20_000
