"""Two real `digest serve` processes on one database share the sign-up form's limits (they are counted in
the database, not in a process): a burst from one network spread over both, all at once, sends exactly
the limit's worth of confirmation emails, on SQLite and on PostgreSQL; every answer is the same page."""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from support.ports import PATIENCE
from support.served import serve
from support.signup import letters, signup_room, stamp_of

LIMIT = 3
SENT = rb"confirm email signup-\d+ sent"
REFUSED = rb"sign-up refused \(limit of the network\)"


def test_two_serve_processes_share_the_limits_through_the_database(tmp_path, database):
    room = signup_room(tmp_path, subscribers=0, per_network_per_hour=LIMIT)
    if "://" in database:  # PostgreSQL: the config names it
        room.edit_config(lambda text: re.sub(r'(?m)^database = .*$', f'database = "{database}"', text))
    room.store.close()
    servers = [serve(room.config), serve(room.config)]
    try:
        with httpx.Client(timeout=PATIENCE) as http:
            stamp = stamp_of(http.get(servers[0].url("/digest/subscribe")).text)

            def post(i: int) -> bytes:
                server = servers[i % 2]
                # One network, 203.0.113.0/24, behind the trusted proxy (127.0.0.1) that says so.
                answer = http.post(server.url("/digest/subscribe"), headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
                                   data={"email": f"reader{i}@domain{i}.example", "locale": "fr", "stamp": stamp})
                assert answer.status_code == 200
                return answer.content

            with ThreadPoolExecutor(max_workers=8) as pool:
                answers = list(pool.map(post, range(8)))
        assert len(set(answers)) == 1  # the same page, sent or refused
        deadline = time.monotonic() + PATIENCE  # the emails leave after the answers: wait until both said so
        while sum(s.count(SENT) for s in servers) < LIMIT and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        logs = [server.stop() for server in servers]
    assert sum(len(re.findall(SENT, log)) for log in logs) == LIMIT
    assert sum(len(re.findall(REFUSED, log)) for log in logs) == 8 - LIMIT
    assert all(re.search(rb"POST /digest/subscribe 200", log) for log in logs)  # both took their share
    assert len(letters(tmp_path)) == LIMIT


def test_digest_serve_removes_the_sign_ups_left_unconfirmed_past_their_expiry(tmp_path):
    from datetime import UTC, datetime, timedelta

    from subscribers.consent import Origin
    from subscribers.signups import Limits, Request
    from subscribers.tokens import load_keys

    room = signup_room(tmp_path, subscribers=1)
    room.store.with_keys(*load_keys(room.settings.secret_file))
    long_ago = datetime.now(UTC) - timedelta(hours=49)  # a sign-up made 49 hours ago, never confirmed
    for address, at in (("late@example.net", long_ago), ("fresh@example.net", None)):
        done = room.store.request_signup(Request(address, "", "fr", frozenset(), "UTC", "1", None), Origin("form", "test"),
                                         Limits(), at=at)
        assert done.outcome == "confirm"
    server = serve(room.config)
    try:
        server.wait_for(rb"1 pending sign-up\(s\) expired: removed")
    finally:
        server.stop()
    assert room.store.get("late@example.net") is None and room.store.history("late@example.net") == []
    assert room.store.get("fresh@example.net").status == "pending"  # within its 48 hours: kept
