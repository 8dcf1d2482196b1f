"""The subscriber store on real SQLite files: CRUD, statuses, consent on import, streaming, variants."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, insert, select, text

import subscribers
from digest.core.errors import InvalidSubscriber, StoreError
from digest.delivery.schema import deliveries
from subscribers import Store
from subscribers.model import NEWSLETTER_HOUR
from subscribers.schema import subscribers as subscribers_table
from subscribers.validate import (
    check_delivery_time,
    check_locale,
    check_rubrics,
    check_timezone,
    clean_name,
    normalise_email,
)

UTC = UTC


# -- validation -------------------------------------------------------------------------------


def test_normalise_email_lowercases_the_domain_and_writes_it_as_a_label():
    assert normalise_email("Salma.Alaoui@Example.MA") == "salma.alaoui@example.ma"  # one mailbox, one row
    assert normalise_email("  omar@example.com ") == "omar@example.com"
    assert normalise_email("leila@exämple.ma") == "leila@xn--exmple-cua.ma"


@pytest.mark.parametrize(
    "raw",
    ["", "salma", "salma@", "@example.ma", "héloïse@example.fr", "salma@example.ma\r\nBcc: x@example.com",
     "a\n@example.ma", "salma@example.ma,omar@example.ma", "a@b", "salma @example.ma", '"a,b"@example.ma'],
)
def test_normalise_email_refuses(raw):
    with pytest.raises(InvalidSubscriber) as caught:
        normalise_email(raw)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


def test_clean_name_is_one_short_line():
    assert clean_name("  Salma\r\n  Alaoui\t") == "Salma Alaoui"
    assert clean_name("Karim\x00\x07 El Fassi") == "Karim El Fassi"
    assert clean_name("هشام   التازي") == "هشام التازي"
    assert len(clean_name("x" * 500)) == 200
    assert clean_name(None) == ""


def test_locale_timezone_and_rubric_checks():
    assert check_locale("FR") == "fr" and check_locale("ar-MA") == "ar" and check_locale("en_GB") == "en"
    assert check_timezone("africa/casablanca") == "Africa/Casablanca"
    assert check_rubrics(["Sport", "economie", ""], {"sport", "economie"}) == frozenset({"sport", "economie"})
    with pytest.raises(InvalidSubscriber, match="unknown locale 'de'"):
        check_locale("de")
    with pytest.raises(InvalidSubscriber, match="unknown time zone 'Mars/Olympus'"):
        check_timezone("Mars/Olympus")
    with pytest.raises(InvalidSubscriber, match="unknown rubric 'meteo'"):
        check_rubrics(["sport", "meteo"], {"sport"})
    with pytest.raises(InvalidSubscriber, match="unknown rubric"):
        check_rubrics(["a,b"], None)


def test_a_delivery_time_is_an_hour_of_the_day_or_asap():
    assert check_delivery_time(" 7:30 ") == "07:30" and check_delivery_time("23:59") == "23:59"
    assert check_delivery_time("00:00") == "00:00" and check_delivery_time("ASAP") == "asap"
    assert check_delivery_time("") == NEWSLETTER_HOUR  # back to the newsletter's hour
    for raw in ("24:00", "7h", "07:60", "0700", "7:5", "now", "07:00:00", "-1:00"):
        with pytest.raises(InvalidSubscriber, match=f"invalid delivery time {raw!r}"):
            check_delivery_time(raw)


# -- opening ----------------------------------------------------------------------------------


def test_open_sets_the_sqlite_pragmas_on_every_connection(store):
    for _ in range(2):
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        store.engine.dispose()


def test_open_takes_a_path_or_a_url(tmp_path):
    Store.open(f"sqlite:///{tmp_path / 'a.db'}").add("salma@example.ma")
    assert Store.open(str(tmp_path / "a.db")).get("salma@example.ma") is not None


@pytest.mark.parametrize("where", ["{tmp}/no/such/folder/digest.db", "nosuchdialect://x", "sqlite:////{tmp}/missing/x.db"])
def test_open_failure_is_a_store_error(tmp_path, where):
    with pytest.raises(StoreError) as caught:
        Store.open(where.format(tmp=tmp_path))
    assert caught.value.exit_code == 2


def test_package_exports():
    assert set(subscribers.__all__) == {
        "LOCALES", "STATUSES", "TOKEN_LENGTH", "CsvError", "Fields", "ImportReport", "InvalidSubscriber", "Store",
        "StoreError", "Subscriber", "Tokens", "Upserted", "export_csv", "import_csv", "load_keys", "normalise_email",
    }
    assert all(hasattr(subscribers, name) for name in subscribers.__all__)


# -- add, get, statuses, remove ---------------------------------------------------------------


def test_add_and_get(store, tmp_path):
    added = store.add("Karim.ElFassi@Example.MA", name="Karim  El Fassi", locale="ar", timezone="Africa/Casablanca",
                      rubrics=frozenset({"politique", "economie"}))
    assert added.email == "karim.elfassi@example.ma"
    assert added.created_at.tzinfo is not None and added.created_at.utcoffset() == timedelta(0)
    again = Store.open(tmp_path / "digest.db").get("Karim.ElFassi@EXAMPLE.ma")
    assert again == added
    assert store.get_by_id(added.id) == added
    assert store.get("nobody@example.ma") is None and store.get_by_id(999) is None
    assert store.get("not an address") is None


def test_add_refuses_a_second_time_and_bad_fields(store):
    store.add("salma@example.ma")
    with pytest.raises(InvalidSubscriber, match="already"):
        store.add("salma@EXAMPLE.MA")
    for bad in ({"locale": "de"}, {"timezone": "Casablanca"}, {"status": "paused"}, {"rubrics": frozenset({"Sp ort"})}):
        with pytest.raises(InvalidSubscriber):
            store.add("omar@example.ma", **bad)
    with pytest.raises(InvalidSubscriber):
        store.add("omar@example.ma\r\nBcc: all@example.com")
    assert store.count()["active"] == 1


def test_a_reader_s_hour_is_kept_changed_given_back_and_on_the_consent_record(database):
    store = Store.open(database)
    try:
        _hours_of_one_reader(store)
    finally:
        store.close()


def _hours_of_one_reader(store):
    added = store.add("omar@example.ma", timezone="Asia/Tokyo", delivery_time="6:30")
    assert added.delivery_time == "06:30" and store.get("omar@example.ma") == added
    assert store.add("salma@example.ma").delivery_time is None  # the newsletter's hour
    assert store.upsert("omar@example.ma", delivery_time="asap").outcome == "updated"
    assert store.upsert("omar@example.ma", delivery_time="ASAP").outcome == "unchanged"
    store.upsert("omar@example.ma", locale="en")  # not given: the hour stays
    assert store.get("omar@example.ma").delivery_time == "asap"
    store.upsert("omar@example.ma", delivery_time=NEWSLETTER_HOUR)
    assert store.get("omar@example.ma").delivery_time is None
    assert [(e.event, e.detail) for e in store.history("omar@example.ma")] == [
        ("added", {"delivery_time": "06:30", "locale": "fr", "rubrics": "", "status": "active", "timezone": "Asia/Tokyo"}),
        ("changed", {"delivery_time": "asap"}),
        ("changed", {"locale": "en"}),
        ("changed", {"delivery_time": None}),
    ]
    assert "delivery_time" not in store.history("salma@example.ma")[0].detail
    with pytest.raises(InvalidSubscriber, match="invalid delivery time '25:00'"):
        store.add("nadia@example.ma", delivery_time="25:00")
    with pytest.raises(InvalidSubscriber, match="invalid delivery time"):
        store.upsert("omar@example.ma", delivery_time="9h")
    assert store.get("nadia@example.ma") is None and store.get("omar@example.ma").delivery_time is None


def test_created_at_is_stored_in_utc(store):
    casablanca = timezone(timedelta(hours=1))
    added = store.add("salma@example.ma", created_at=datetime(2025, 3, 1, 9, 30, tzinfo=casablanca))
    assert store.get(added.email).created_at == datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    assert store.get(added.email).created_at.tzinfo == UTC


def test_statuses_and_unsubscribe_is_idempotent(store):
    added = store.add("youssef@example.ma")
    time.sleep(0.002)
    assert store.unsubscribe("youssef@example.ma") is True
    after = store.get(added.email)
    assert after.status == "unsubscribed" and after.updated_at > added.updated_at
    assert store.unsubscribe(added.id) is False
    assert store.get(added.email).updated_at == after.updated_at
    assert store.set_status(added.id, "bounced") is True
    assert store.set_status(added.id, "bounced") is False
    assert store.set_status("nobody@example.ma", "bounced") is False
    with pytest.raises(InvalidSubscriber):
        store.set_status(added.id, "paused")
    assert store.count() == {"active": 0, "unsubscribed": 0, "bounced": 1}


def test_remove_deletes_the_ledger_rows_too(store):
    added = store.add("nadia@example.com")
    with store.engine.begin() as conn:
        conn.execute(insert(deliveries).values(edition="2026-11-29", subscriber_id=added.id, updated_at=datetime.now(UTC)))
    assert store.remove("nadia@EXAMPLE.com") is True
    assert store.remove("nadia@example.com") is False
    with store.engine.connect() as conn:
        assert conn.execute(select(deliveries)).all() == []


def test_count_has_every_status(store):
    assert store.count() == {"active": 0, "unsubscribed": 0, "bounced": 0}
    store.add("a@example.ma")
    store.add("b@example.ma", status="bounced")
    assert store.count() == {"active": 1, "unsubscribed": 0, "bounced": 1}


# -- upsert (the import's write) --------------------------------------------------------------


def test_upsert_is_idempotent_and_keeps_updated_at(store):
    assert store.upsert("salma@example.ma", name="Salma", rubrics=frozenset({"sport"})).outcome == "created"
    before = store.get("salma@example.ma")
    time.sleep(0.002)
    assert store.upsert("salma@example.ma", name="Salma", rubrics=frozenset({"sport"})) == ("unchanged", None)
    assert store.get("salma@example.ma").updated_at == before.updated_at
    assert store.upsert("salma@example.ma", locale="en").outcome == "updated"
    after = store.get("salma@example.ma")
    assert after.updated_at > before.updated_at
    assert (after.name, after.rubrics, after.locale) == ("Salma", frozenset({"sport"}), "en")  # None kept the rest


def test_upsert_uses_created_at_and_defaults_only_when_creating(store):
    first = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    store.upsert("omar@example.ma", created_at=first, default_locale="ar", default_timezone="Africa/Casablanca")
    made = store.get("omar@example.ma")
    assert (made.created_at, made.locale, made.timezone) == (first, "ar", "Africa/Casablanca")
    assert store.upsert("omar@example.ma", created_at=first + timedelta(days=9), default_locale="fr").outcome == "unchanged"
    assert store.get("omar@example.ma") == made


@pytest.mark.parametrize("left", ["unsubscribed", "bounced"])
def test_upsert_never_makes_someone_who_left_active_again(store, left):
    store.add("khadija@example.ma", status=left)
    assert store.upsert("khadija@example.ma", status="active") == ("unchanged", left)
    assert store.upsert("khadija@example.ma", status="active", name="Khadija") == ("updated", left)
    assert store.get("khadija@example.ma").status == left


def test_upsert_may_stop_sending(store):
    store.add("thomas@example.com")
    assert store.upsert("thomas@example.com", status="unsubscribed") == ("updated", None)
    assert store.get("thomas@example.com").status == "unsubscribed"


def test_bulk_is_one_transaction(store):
    with pytest.raises(RuntimeError):
        with store.bulk() as tx:
            tx.upsert("a@example.ma")
            tx.upsert("b@example.ma")
            raise RuntimeError("crash in the middle of an import")
    assert store.count()["active"] == 0
    with store.bulk() as tx:
        tx.upsert("a@example.ma")
        assert tx.get("a@example.ma") is not None
    assert store.get("a@example.ma") is not None


# -- streaming and variants -------------------------------------------------------------------


def _fill(store: Store, n: int) -> None:
    stamp = datetime(2025, 6, 1, tzinfo=UTC)
    rows = [
        {"email": f"reader{i:06d}@example.ma", "name": f"Lecteur {i}", "locale": "fr", "timezone": "Africa/Casablanca",
         "rubrics": "", "status": "bounced" if i % 10 == 0 else "active", "created_at": stamp, "updated_at": stamp}
        for i in range(1, n + 1)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(subscribers_table), rows)


def test_iter_subscribers_streams_in_id_order_page_by_page(store):
    _fill(store, 25_000)
    selects: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: selects.append(statement) if statement.startswith("SELECT") else None)
    seen = 0
    last = 0
    stream = store.iter_subscribers(batch=1000)
    first = next(stream)
    assert len(selects) == 1 and "LIMIT" in selects[0]  # one page read, not the table
    for subscriber in [first, *stream]:
        assert subscriber.id > last
        last = subscriber.id
        seen += 1
    assert seen == 25_000
    assert 25 <= len(selects) <= 26
    active = list(store.iter_subscribers(status="active", batch=1000))
    assert len(active) == 22_500 and all(s.status == "active" for s in active)
    assert [s.id for s in active] == sorted(s.id for s in active)


def test_iter_subscribers_exact_multiple_of_the_batch(store):
    _fill(store, 30)
    assert [s.id for s in store.iter_subscribers(batch=10)] == list(range(1, 31))
    assert list(Store(store.engine).iter_subscribers(status="unsubscribed")) == []


def test_variants_are_the_distinct_choices_of_active_subscribers(store):
    store.add("a@example.ma", locale="fr", rubrics=frozenset({"sport", "economie"}))
    store.add("b@example.ma", locale="fr", rubrics=frozenset({"economie", "sport"}))
    store.add("c@example.ma", locale="ar")
    store.add("d@example.ma", locale="fr")
    store.add("e@example.com", locale="en", rubrics=frozenset({"tech"}))
    store.add("f@example.com", locale="en", rubrics=frozenset({"culture"}), status="unsubscribed")
    assert store.variants() == [
        ("ar", frozenset()),
        ("en", frozenset({"tech"})),
        ("fr", frozenset()),
        ("fr", frozenset({"economie", "sport"})),
    ]
