"""An import of a large file, on both engines: every bad row named by its line (the first ERRORS_KEPT,
the rest counted), the good ones imported, duplicates found across pages without a dict of the whole
file, and each address checked in full while its domain is checked once per domain (the shortcut of
subscribers.validate gives exactly what email-validator gives on the whole address)."""
from __future__ import annotations

import re

import pytest

import subscribers.validate as validate
from digest.core.errors import CsvError, InvalidSubscriber
from subscribers import Store, import_csv
from subscribers.csvio import ERRORS_KEPT, PAGE
from subscribers.validate import checked_domain, normalise_email


def _write(tmp_path, lines, name="readers.csv"):
    path = tmp_path / name
    path.write_text("email,name,locale\n" + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_bad_rows_are_named_by_line_and_the_good_ones_imported(database, tmp_path):
    lines, bad = [], {}
    for i in range(2 * PAGE + 100):
        line = i + 2  # the header is line 1
        if i % 197 == 13:
            lines.append(f"broken{i}-at-example.ma,X,fr")
            bad[line] = "must have an @-sign"
        elif i % 197 == 50:
            lines.append(f"reader{i}@example.ma,X,klingon")
            bad[line] = "unknown locale 'klingon'"
        elif i % 197 == 70:
            lines.append(f"Reader{i - 60}@Example.MA,Again,en")  # the row 60 lines up, case aside
            bad[line] = f"duplicate address reader{i - 60}@example.ma (first on line {line - 60})"
        else:
            lines.append(f"reader{i}@example.ma,Lecteur {i},fr")
    lines.append(f"reader{PAGE + 3}@example.ma,Twice,fr")  # a duplicate one page and more away
    bad[len(lines) + 1] = f"duplicate address reader{PAGE + 3}@example.ma (first on line {PAGE + 5})"
    store = Store.open(database)
    try:
        report = import_csv(store, _write(tmp_path, lines))
        assert [line for line, _ in report.errors] == sorted(bad)[:ERRORS_KEPT]
        for line, reason in report.errors:
            assert bad[line] in reason, (line, reason)
        assert (report.created, report.bad) == (len(lines) - len(bad), len(bad))
        assert sum(store.count().values()) == report.created
        assert store.get("reader0@example.ma").name == "Lecteur 0"
        assert store.get(f"reader{PAGE + 3}@example.ma").name == f"Lecteur {PAGE + 3}"
        assert len(store.history("reader1@example.ma")) == 1
        again = import_csv(store, _write(tmp_path, lines))  # the same file: nothing changes
        assert (again.created, again.updated, again.unchanged, again.bad) == (0, 0, report.created, len(bad))
    finally:
        store.close()


def test_the_report_keeps_the_first_bad_lines_whatever_order_they_are_found_in(store, tmp_path):
    # Duplicates are found a page at a time, after the page's other bad rows: the report still keeps
    # the lowest lines.
    lines = [f"reader{i}@example.ma,X,fr" for i in range(10)]
    lines += [f"reader{i % 10}@example.ma,X,fr" if i % 2 else "nope,X,fr" for i in range(3 * ERRORS_KEPT)]
    report = import_csv(store, _write(tmp_path, lines))
    assert report.bad == 3 * ERRORS_KEPT and len(report.errors) == ERRORS_KEPT
    assert [line for line, _ in report.errors] == list(range(12, 12 + ERRORS_KEPT))


def test_imported_rows_are_stored_as_core_stores_them(store, tmp_path):
    # The import hands rows to the driver itself: a moment must still be SQLAlchemy's text on SQLite.
    store.add("added@example.ma", name="Added")
    import_csv(store, _write(tmp_path, ["imported@example.ma,Imported,fr"]))
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT email, created_at, updated_at FROM subscribers ORDER BY id").all()
        events = conn.exec_driver_sql("SELECT email, at FROM consent_events ORDER BY id").all()
    shape = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
    assert [r.email for r in rows] == ["added@example.ma", "imported@example.ma"]
    assert all(shape.fullmatch(value) for r in rows for value in (r.created_at, r.updated_at)), rows
    assert len(events) == 2 and all(shape.fullmatch(e.at) for e in events), events
    assert store.get("imported@example.ma").created_at.tzinfo is not None


def test_an_import_after_a_failed_one_on_the_same_store(store, tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"email\nomar@example.ma\nh\xe9l\xe8ne@example.com\n")
    with pytest.raises(CsvError, match="not UTF-8"):
        import_csv(store, broken)
    report = import_csv(store, _write(tmp_path, ["omar@example.ma,Omar,fr", "omar@example.ma,Omar,fr"]))
    assert (report.created, report.bad) == (1, 1)


def test_each_domain_is_checked_once(store, tmp_path, monkeypatch):
    calls: list[str] = []
    real = validate.validate_email

    def counted(address, **options):
        calls.append(address)
        return real(address, **options)

    monkeypatch.setattr(validate, "validate_email", counted)
    checked_domain.cache_clear()
    lines = [f"lecteur.{i}@gmail.com,X,fr" for i in range(2000)] + [f"r{i}@menara.ma,X,fr" for i in range(500)]
    lines += ["broken@@gmail.com,X,fr", "ok..not@gmail.com,X,fr"]
    report = import_csv(store, _write(tmp_path, lines))
    assert (report.created, report.bad) == (2500, 2)
    # One check per domain, and one full check per address the shortcut does not vouch for.
    assert sorted(calls) == ["broken@@gmail.com", "ok..not@gmail.com", "x@gmail.com", "x@menara.ma"]
    assert checked_domain.cache_info().misses == 2


ADDRESSES = [
    "amine@example.ma", "Amine.Alaoui@Example.MA", "postmaster@example.ma", "PostMaster@example.ma",
    "first+tag@gmail.com", "a_b-c@sub.domain.example.ma", "x@café.fr", "x@CAFÉ.fr", "x@xn--caf-dma.fr",
    "o'brien@example.com", "weird!#$%&*/=?^`{|}~@example.com", "a..b@example.com", ".a@example.com",
    "a.@example.com", "a@example.com.", "a@-example.com", "a@exa_mple.com", "a@localhost", "a@example.test",
    "a@invalid", '"quoted"@example.com', "Name <a@example.com>", "a@[192.0.2.1]", "a@b@example.com",
    "a b@example.com", "a@" + "x" * 64 + ".com", "a@" + ".".join(["abc"] * 60) + ".com", "é@example.com",
    "x" * 64 + "@example.com", "x" * 65 + "@example.com", "x" * 242 + "@example.com", "x" * 243 + "@example.com",
    "x" * 236 + "@café-crème.fr", "x" * 240 + "@café.fr", "x" * 235 + "@xn--caf-dma.fr", "@example.com", "a@",
    "a@ex\u200bample.com", "a@EXAMPLE.COM", "a@éxample.ma", "a@١٢٣.com", "a@مثال.ma",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_domain_shortcut_agrees_with_email_validator_on_the_whole_address(address):
    checked_domain.cache_clear()
    for _ in range(2):  # the domain checked, then known
        try:
            expected: str | None = validate._validated(address)
        except InvalidSubscriber as exc:
            expected = str(exc)
        try:
            got: str | None = normalise_email(address)
        except InvalidSubscriber as exc:
            got = str(exc)
        assert got == expected


def test_an_address_met_on_an_earlier_page_and_twice_on_this_one_names_its_first_line(store, tmp_path):
    lines = [f"reader{i}@example.ma,X,fr" for i in range(PAGE + 10)]
    lines += ["reader3@example.ma,Again,fr", "READER3@example.ma,Again,fr", "reader4@example.ma,X,fr"]
    report = import_csv(store, _write(tmp_path, lines))
    first = PAGE + 12  # the line after the first page and ten more rows
    assert report.errors == [(first, "duplicate address reader3@example.ma (first on line 5)"),
                             (first + 1, "duplicate address reader3@example.ma (first on line 5)"),
                             (first + 2, "duplicate address reader4@example.ma (first on line 6)")]
    assert report.created == PAGE + 10


@pytest.mark.parametrize("through", ["driver", "core"])
def test_rows_whose_key_is_taken_are_skipped_counted_and_found(database, through, monkeypatch):
    # The first lines of an import go in with taken addresses skipped, through the driver's executemany or
    # (for a driver of another parameter style) through Core: both say how many went in, and
    # read rows back by address.
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from subscribers import merging

    if through == "core":
        monkeypatch.setattr(merging, "_MARKS", {})
    table = Table("taken_keys", MetaData(), Column("email", String(20), primary_key=True), Column("line", Integer))
    store = Store.open(database)
    try:
        with store.engine.begin() as conn:
            table.create(conn)
            assert merging.insert_many(conn, table, [{"email": "a", "line": 1}, {"email": "b", "line": 2}], skip_taken=True) == 2
            assert merging.insert_many(conn, table, [{"email": "b", "line": 3}, {"email": "c", "line": 4}], skip_taken=True) == 1
            assert sorted(conn.execute(table.select()).all()) == [("a", 1), ("b", 2), ("c", 4)]
            assert sorted(merging.by_email(conn, table, ("line",), ["a", "c", "z"])) == [("a", 1), ("c", 4)]
            table.drop(conn)
    finally:
        store.close()


def test_each_imported_reader_has_a_consent_row_of_their_own_values_never_their_name(store, tmp_path):
    # Consent rows of readers of the same values are made once and copied: each still has its own
    # address, and a row of other values its own detail.
    report = import_csv(store, _write(tmp_path, ["amine@example.ma,Amine Alaoui,fr", "salma@example.ma,Salma Bennani,fr",
                                                 "omar@example.ma,Omar Tazi,ar"]))
    assert report.created == 3
    details = {}
    for email in ("amine@example.ma", "salma@example.ma", "omar@example.ma"):
        (event,) = store.history(email)
        assert event.event == "imported" and event.channel == "import"
        details[email] = event.detail
    assert details["amine@example.ma"] == details["salma@example.ma"]
    assert details["amine@example.ma"]["name"] == "(changed)" and details["amine@example.ma"]["locale"] == "fr"
    assert details["omar@example.ma"]["locale"] == "ar"
    assert not any(name in str(details) for name in ("Amine", "Salma", "Omar"))
