"""Sign-ups, consent and erasure in the store itself, on SQLite and on PostgreSQL: a sign-up is used once,
expires, counts against its limits (a refusal counts nothing), and an erased address leaves only a keyed
hash that import and add respect."""
from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from digest.core.errors import InvalidSubscriber
from subscribers.consent import Origin, network
from subscribers.csvio import import_csv
from subscribers.schema import erasures, signup_counters
from subscribers.signups import Limits, Request
from subscribers.store import Store

FORM = Origin("form", "https://example.ma/digest/subscribe", "1", "192.0.2.0/24", "Browser")
KEYS = {1: b"0123456789abcdef0123456789abcdef"}


@pytest.fixture
def store(database):
    store = Store.open(database).with_keys(KEYS, 1)
    yield store
    store.close()


def request(email: str, net: str | None = "192.0.2.0/24", locale: str = "fr") -> Request:
    return Request(email, "", locale, frozenset({"sport"}), "UTC", "1", net)


def test_a_sign_up_is_confirmed_once_and_applies_its_choices(store):
    store.add("back@example.ma", status="unsubscribed", locale="fr")
    done = store.request_signup(request("back@example.ma", locale="ar"), FORM, Limits())
    assert done.outcome == "confirm" and store.get("back@example.ma").status == "unsubscribed"
    assert store.pending_signup(done.signup_id).email == "back@example.ma"
    reader = store.confirm_signup(done.signup_id, FORM)
    assert (reader.status, reader.locale, reader.rubrics) == ("active", "ar", frozenset({"sport"}))
    assert store.confirm_signup(done.signup_id, FORM) is None and store.pending_signup(done.signup_id) is None
    assert [e.event for e in store.history("back@example.ma")] == ["added", "signed_up", "confirmed"]
    assert store.request_signup(request("back@example.ma"), FORM, Limits()).outcome == "active"


def test_the_limits_count_what_is_sent_and_a_refusal_counts_nothing(store):
    limits = Limits(per_address_per_day=5, per_network_per_hour=2, per_domain_per_hour=5)
    outcomes = [store.request_signup(request(f"r{i}@example.ma"), FORM, limits).outcome for i in range(4)]
    assert outcomes == ["confirm", "confirm", "limited", "limited"]
    assert store.request_signup(request("other@example.ma", "198.51.100.0/24"), FORM, limits).outcome == "confirm"
    assert store.get("r2@example.ma") is None
    with store.engine.connect() as conn:
        counts = sorted(conn.execute(select(signup_counters.c.key, signup_counters.c.count)).all())
    # Three addresses, two networks, one domain: the refused two were rolled back, counted nowhere.
    assert sorted(count for _, count in counts) == [1, 1, 1, 1, 2, 3]
    assert not any("example.ma" in key or "192.0.2" in key for key, _ in counts)  # keyed hashes, never the values
    later = datetime.now(UTC) + timedelta(hours=1, minutes=1)  # the next hour's window
    assert store.request_signup(request("r9@example.ma"), FORM, limits, at=later).outcome == "confirm"


def test_an_expired_sign_up_confirms_nothing_and_its_pending_reader_is_purged(store):
    past = datetime.now(UTC) - timedelta(hours=49)
    done = store.request_signup(request("late@example.ma"), FORM, Limits(), at=past)
    assert store.pending_signup(done.signup_id) is None and store.confirm_signup(done.signup_id, FORM) is None
    assert store.get("late@example.ma").status == "pending"
    assert store.purge_signups() == 1 and store.get("late@example.ma") is None
    assert store.history("late@example.ma") == []


def test_erasure_keeps_a_keyed_hash_only_and_import_and_add_respect_it(store):
    store.add("gone@example.ma", name="Gone")
    assert store.erase("gone@example.ma", Origin("cli", "digest subscribers erase"))
    with store.engine.connect() as conn:
        [row] = conn.execute(select(erasures)).all()
    assert "gone" not in str(row) and len(row.digest) == 64 and row.channel == "cli"
    assert store.get("gone@example.ma") is None and store.history("gone@example.ma") == []
    report = import_csv(store, io.StringIO("email\ngone@example.ma\nnew@example.ma\n"))
    assert (report.created, report.bad) == (1, 1)
    with pytest.raises(InvalidSubscriber, match="erased"):
        store.add("gone@example.ma")
    # Another key version held (the secret rotated): the old hash is still recognised.
    rotated = Store(store.engine).with_keys({**KEYS, 2: b"another-secret-of-enough-length"}, 2)
    assert rotated.erased_at("gone@example.ma") is not None


@pytest.mark.parametrize("address, expected", [
    ("203.0.113.77", "203.0.113.0/24"), ("::ffff:203.0.113.77", "203.0.113.0/24"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), ("testclient", None), (None, None),
])
def test_a_client_is_kept_as_its_network_never_its_address(address, expected):
    assert network(address) == expected
