"""`digest serve` at its edges, against the real command on a free port with raw sockets: clients
that leave in the middle, hostile bytes in request paths, tokens anywhere in a path, idle and
half-sent connections, a client that stops reading, oversized request heads.

The server's stderr is read by a thread as it comes (support/served.py), so a test can wait for a log
line instead of sleeping; every assertion on the log is made after the server has stopped and written
everything.
"""
from __future__ import annotations

import os
import re
import socket
import struct
import time
from pathlib import Path

import httpx
import pytest

from support import cli
from support.newsroom import PREFIX, Newsroom, sid
from support.served import Served, serve

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def read_all(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closing)."""
    chunks = []
    try:
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def exchange(served: Served, request: bytes) -> bytes:
    with served.connect() as conn:
        conn.sendall(request)
        return read_all(conn)


def reset(conn: socket.socket) -> None:
    """Close with a TCP reset, as a client that crashes or loses its network does."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def request_lines(log: bytes, pattern: bytes) -> list[bytes]:
    return [line for line in log.splitlines() if re.search(rb"digest\.serve: " + pattern, line)]


def assert_clean(log: bytes) -> None:
    """No traceback, no 500, and every line is a log line of its own, printable throughout."""
    text = log.decode("utf-8")  # strict: a raw byte from a request would fail here
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text
    assert not re.search(r" 500 \d+ ms", text), text
    for line in text.split("\n")[:-1]:
        assert LOG_LINE.match(line), repr(line)
        assert line.isprintable(), repr(line)


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    room = Newsroom(tmp_path_factory.mktemp("edges"), subscribers=4)
    big = room.settings.archive / "2026-11-20.html"
    big.parent.mkdir(parents=True, exist_ok=True)
    # Larger than the socket buffers on both sides (Linux tcp_wmem/rmem maxima are 4 and 6 MiB by
    # default), so that a client that stops reading really stalls the server's writes.
    big.write_bytes(b"<!doctype html><p>" + b"x" * (12 * 1024 * 1024) + b"</p>")
    return room


def token_of(room: Newsroom, i: int) -> str:
    return room.tokens.make(sid(room, i))


# -- clients that leave -------------------------------------------------------------------------------

def test_a_client_leaving_mid_body_or_mid_answer_gets_no_500_and_leaves_one_log_line(room):
    served = serve(room.config)
    try:
        tokens = [token_of(room, i) for i in range(3)]
        cut_bodies = [
            (f"POST {PREFIX}/unsubscribe/{tokens[0]}", "text/plain", b"List-Unsu"),
            (f"POST {PREFIX}/unsubscribe/{tokens[1]}", "application/x-www-form-urlencoded", b"List-Unsub"),
            (f"POST {PREFIX}/unsubscribe/{tokens[2]}", "multipart/form-data; boundary=b", b"--b\r\nContent-"),
            (f"POST {PREFIX}/preferences/{tokens[0]}", "application/x-www-form-urlencoded", b"csrf=01abc"),
        ]
        for done, (line, kind, part) in enumerate(cut_bodies, 1):
            with served.connect() as conn:  # announces 1000 bytes, sends ten or so, leaves
                conn.sendall(f"{line} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                             f"Content-Length: 1000\r\n\r\n".encode() + part)
            served.wait_for(rb"POST /digest/", count=done)
        # Leaves with a reset while a 12 MiB page is on its way to it.
        conn = served.connect()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.sendall(b"GET /digest/archive/2026-11-20.html HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 200 ")
        reset(conn)
        # Sends a whole one-click POST and leaves without reading the answer.
        with served.connect() as conn:
            conn.sendall(f"POST {PREFIX}/unsubscribe/{tokens[2]} HTTP/1.1\r\nHost: x\r\n"
                         "Content-Length: 26\r\n\r\nList-Unsubscribe=One-Click".encode())
        assert httpx.get(served.url(f"{PREFIX}/healthz"), timeout=30).status_code == 200
    finally:
        log = served.stop()
    assert served.process.returncode == 0
    assert_clean(log)
    assert [room.store.get(e).status for e in room.emails[:2]] == ["active", "active"]  # nothing half-done
    assert len(request_lines(log, rb"GET /digest/archive/2026-11-20\.html ")) == 1
    posts = request_lines(log, rb"POST ")
    # Each cut body once, as 499; the whole one-click POST once too: answered (200) or, if the server
    # saw the client go before it read the body, 499.
    assert len(posts) == len(cut_bodies) + 1, log
    assert all(re.search(rb" (200|499) \d+ ms$", line) for line in posts), posts
    assert sum(b" 499 " in line for line in posts) >= len(cut_bodies), posts
    for token in tokens:
        assert token.encode() not in log


def test_a_cut_body_is_logged_as_499_once(room):
    served = serve(room.config)
    try:
        with served.connect() as conn:
            conn.sendall(f"POST {PREFIX}/unsubscribe/{token_of(room, 3)} HTTP/1.1\r\nHost: x\r\n"
                         "Content-Length: 1000\r\n\r\n0123456789".encode())
        served.wait_for(rb"POST /digest/unsubscribe/")
    finally:
        log = served.stop()
    assert_clean(log)
    lines = request_lines(log, rb"POST ")
    assert len(lines) == 1 and re.search(rb"POST /digest/unsubscribe/\xe2\x80\xa6 499 \d+ ms$", lines[0]), log
    assert room.store.get(room.emails[3]).status == "active"


# -- what the log may hold ----------------------------------------------------------------------------

HOSTILE_PATHS = {
    b"/digest/x%0A2026-11-29%2010:00:00,000%20INFO%20digest.serve:%20GET%20/forged%20200%201%20ms":
        b"/digest/x%0A2026-11-29%2010:00:00,000%20INFO%20digest.serve:%20GET%20/forged%20200%201%20ms",
    b"/digest/x%0Dover": b"/digest/x%0Dover",
    b"/digest/nul%00byte": b"/digest/nul%00byte",
    b"/digest/%1B[31mred%1B[0m": b"/digest/%1B%5B31mred%1B%5B0m",
    b"/digest/nel%C2%85ls%E2%80%A8rlo%E2%80%AE": b"/digest/nel%C2%85ls%E2%80%A8rlo%E2%80%AE",
    b"/digest/bad-utf8%FF%C3": b"/digest/bad-utf8%EF%BF%BD%EF%BF%BD",
    b"/digest/back\\slash%5Cquote%22": b"/digest/back%5Cslash%5Cquote%22",
    b"/digest/arabic-%D8%B9%D8%B1%D8%A8%D9%8A": b"/digest/arabic-%D8%B9%D8%B1%D8%A8%D9%8A",
}


def test_control_characters_and_raw_bytes_in_a_path_never_reach_the_log_as_such(room):
    served = serve(room.config)
    try:
        for path in HOSTILE_PATHS:
            answer = exchange(served, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 404 "), (path, answer[:100])
        for raw in (b"/digest/\xc3\xa9t\xc3\xa9", b"/digest/\xff\x1b[31m", b"/digest/a\x00b"):
            answer = exchange(served, b"GET " + raw + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 400 "), (raw, answer[:100])  # uvicorn's parser refuses them
    finally:
        log = served.stop()
    assert_clean(log)
    assert b"/forged" not in log.replace(b"%20/forged", b"")  # only inside the escaped line, never as one
    for shown in HOSTILE_PATHS.values():
        assert len(request_lines(log, rb"GET " + re.escape(shown))) == 1, (shown, log)
    for byte in (b"\x00", b"\x1b", b"\r", b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xae", b"\xff"):
        assert byte not in log


def test_a_token_never_reaches_the_log_wherever_it_is_in_the_path_and_in_any_case(room):
    token = token_of(room, 0)
    quoted = "".join(f"%{ord(c):02X}" for c in token)  # the same path, every character percent-encoded
    paths = [
        f"{PREFIX}/unsubscribe/{token}", f"{PREFIX}/Unsubscribe/{token}", f"{PREFIX}/UNSUBSCRIBE/{token}",
        f"{PREFIX}/preferences/{token}", f"{PREFIX}/PreFerences/{token}/more", f"{PREFIX}/archive/{token}",
        f"{PREFIX}/archive/{token}.html", f"{PREFIX}/{token}", f"/{token}", f"{PREFIX}/static/{token}",
        f"{PREFIX}/x/{token}/y", f"{PREFIX}/unsubscribe/{quoted}", f"{PREFIX}/archive/{quoted}",
        f"{PREFIX}/unsubscribe%2F{token}", f"{PREFIX}/unsubscribe/{token}?token={token}",
    ]
    served = serve(room.config)
    try:
        with httpx.Client(timeout=30) as http:
            for path in paths:
                http.get(served.url(path))
            http.post(served.url(f"{PREFIX}/UnSubscribe/{token}"), data={"List-Unsubscribe": "One-Click"})
    finally:
        log = served.stop()
    assert_clean(log)
    assert len(request_lines(log, rb"(GET|POST) ")) == len(paths) + 1
    for secret in (token, token[12:], token[12:32], token[-20:], quoted[:60]):
        assert secret.encode() not in log, secret
    assert request_lines(log, rb"GET /digest/Unsubscribe/\xe2\x80\xa6 404 ")
    assert request_lines(log, rb"GET /digest/archive/\xe2\x80\xa6 404 ")


# -- idle, slow and oversized ------------------------------------------------------------------------

TIMEOUT = 2  # --request-timeout for these tests: short, so that they wait little
# The bound the brief asks for, with a generous margin over TIMEOUT: the server checks on its event
# loop, which a machine whose cores are busy may run late by seconds, never by this much.
CLOSED_WITHIN = TIMEOUT + 20


def test_idle_and_half_sent_connections_are_closed_in_time_and_the_server_still_answers(room):
    served = serve(room.config, "--request-timeout", str(TIMEOUT))
    opened = time.monotonic()
    try:
        idle = [served.connect(timeout=CLOSED_WITHIN) for _ in range(50)]
        half_line = served.connect(timeout=CLOSED_WITHIN)
        half_line.sendall(b"GET /dig")
        half_head = served.connect(timeout=CLOSED_WITHIN)
        half_head.sendall(b"GET /digest/healthz HTTP/1.1\r\nHost: x\r\nAccept: text/pl")
        trickle = served.connect(timeout=CLOSED_WITHIN)  # a byte at a time does not extend the deadline
        after_answer = served.connect(timeout=CLOSED_WITHIN)
        after_answer.sendall(b"GET /digest/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b"\r\n\r\nok\n"):  # the whole answer, then the connection is idle
            first += after_answer.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        after_answer.sendall(b"GET /digest/heal")  # keep-alive, then half of the next request
        half_body = served.connect(timeout=CLOSED_WITHIN)
        half_body.sendall(f"POST {PREFIX}/unsubscribe/{token_of(room, 1)} HTTP/1.1\r\nHost: x\r\n"
                          "Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\nList-Unsu".encode())
        # Meanwhile, a normal request is answered at once.
        assert httpx.get(served.url(f"{PREFIX}/healthz"), timeout=30).text == "ok\n"
        trickled = b"GET /digest/healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 1000
        started, cut_off = time.monotonic(), False
        for byte in trickled:  # a byte every 0.2 s, each well within the timeout of the one before
            try:
                trickle.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                cut_off = True
                break
            if time.monotonic() - started > CLOSED_WITHIN:
                break
            time.sleep(0.2)
        assert cut_off, "a byte at a time kept the connection open"
        for conn in [*idle, half_line, half_head, trickle, after_answer]:
            assert read_all(conn) == b"", "closed without an answer"
            conn.close()
        answer = read_all(half_body)
        half_body.close()
        assert answer.startswith(b"HTTP/1.1 408 ") and b"connection: close" in answer.lower()
        assert time.monotonic() - opened < CLOSED_WITHIN + 20  # 20 s for the trickle's own sends
        assert httpx.get(served.url(f"{PREFIX}/healthz"), timeout=30).status_code == 200
    finally:
        log = served.stop()
    assert_clean(log)
    assert len(request_lines(log, rb"POST /digest/unsubscribe/\xe2\x80\xa6 408 \d+ ms$")) == 1
    assert room.store.get(room.emails[1]).status == "active"


def open_sockets(pid: int) -> int:
    """How many sockets a process holds (Linux): its listening socket, asyncio's self-pipe, connections."""
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:  # closed while we looked
            pass
    return count


def test_a_client_that_stops_reading_is_dropped(room):
    served = serve(room.config, "--request-timeout", str(TIMEOUT))
    try:
        idle = open_sockets(served.process.pid)
        conn = served.connect(timeout=CLOSED_WITHIN)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a window too small for the page
        conn.sendall(b"GET /digest/archive/2026-11-20.html HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 200 ")
        served.wait_for(rb"stopped reading", timeout=CLOSED_WITHIN + 30)
        # The process let go of the connection (what the kernel still buffers for it drains on its own,
        # slowly through so small a window: reading it would take minutes).
        deadline = time.monotonic() + 30
        while open_sockets(served.process.pid) > idle:
            assert time.monotonic() < deadline, "the stalled connection is still held"
            time.sleep(0.1)
        reset(conn)
        page = (room.settings.archive / "2026-11-20.html").read_bytes()
        assert httpx.get(served.url(f"{PREFIX}/archive/2026-11-20.html"), timeout=60).content == page
    finally:
        log = served.stop()
    assert_clean(log)
    assert len([line for line in log.splitlines() if b"stopped reading" in line]) == 1


def test_connections_beyond_the_limit_are_closed_at_once(room):
    # A request timeout far longer than the wait below: whatever closes the extra one is the limit.
    served = serve(room.config, "--max-connections", "5", "--request-timeout", "600")
    try:
        held = [served.connect() for _ in range(5)]
        extra = served.connect(timeout=60)
        assert read_all(extra) == b""
        extra.close()
        for conn in held:
            conn.close()
        deadline = time.monotonic() + 60  # until the server has seen them go
        while True:
            try:
                if httpx.get(served.url(f"{PREFIX}/healthz"), timeout=30).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        log = served.stop()
    assert_clean(log)
    assert len([line for line in log.splitlines() if b"connection limit" in line]) == 1


def test_request_heads_up_to_32_kib_pass_and_larger_ones_are_refused(room):
    served = serve(room.config)
    try:
        cookie = "; ".join(f"c{i}={'v' * 90}" for i in range(220))  # ~20 KiB: a news site's cookies
        ok = exchange(served, f"GET {PREFIX}/healthz HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n"
                              "Connection: close\r\n\r\n".encode())
        assert ok.startswith(b"HTTP/1.1 200 ")
        huge = exchange(served, f"GET {PREFIX}/healthz HTTP/1.1\r\nHost: x\r\nCookie: {cookie * 2}\r\n"
                                "Connection: close\r\n\r\n".encode())
        # 400 from h11 when the head comes in pieces, 431 from the app when one read holds it all.
        assert huge.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 431 ")), huge[:100]
        # A head that never ends: refused as soon as more than 32 KiB of it wait for their end.
        endless = exchange(served, f"GET {PREFIX}/healthz HTTP/1.1\r\nHost: x\r\nCookie: {cookie * 2}\r\n".encode())
        assert endless.startswith(b"HTTP/1.1 400 "), endless[:100]
        big_body = served.connect()  # announces more than 16 KiB: refused before a byte of it is read
        big_body.sendall(f"POST {PREFIX}/unsubscribe/{token_of(room, 0)} HTTP/1.1\r\nHost: x\r\n"
                         "Content-Length: 10000000\r\n\r\n".encode())
        answer = read_all(big_body)  # and the connection closed, not kept for 10 MB to come
        big_body.close()
        assert answer.startswith(b"HTTP/1.1 413 ") and b"connection: close" in answer.lower()
    finally:
        log = served.stop()
    assert_clean(log)


def test_serve_help_documents_the_limits_and_the_one_click_bodies():
    result = cli.digest("serve", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for needle in ("--request-timeout", "--max-connections", "DIGEST_REQUEST_TIMEOUT", "DIGEST_MAX_CONNECTIONS",
                   "32 KiB", "16 KiB", "408", "503", "application/x-www-form-urlencoded", "multipart/form-data",
                   "List-Unsubscribe=One-Click"):
        assert needle in text, needle
    import digest.web.serve

    for needle in ("application/x-www-form-urlencoded", "multipart/form-data", "no Content-Type"):
        assert needle in " ".join(digest.web.serve.__doc__.split()), needle
