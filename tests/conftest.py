"""Shared fixtures: paths, a real local HTTP server for feeds, golden files, the example settings."""
from __future__ import annotations

import http.server
import os
import threading
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from ports import PATIENCE

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden"
SEED = ROOT.parent / "shared" / "seeds" / "000_fb67cff44d161e2b.txt"
if not SEED.exists():  # CI clones elsewhere but keeps shared/ beside the checkout; the example is a byte copy
    SEED = EXAMPLES / "sources" / "homepage-2026-11-29.txt"

DAY = date(2026, 11, 29)
TZ_NAME = "Africa/Casablanca"
TZ = ZoneInfo(TZ_NAME)


def pytest_addoption(parser):
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="Rewrite tests/golden/ from the current output instead of comparing (review the diff!).",
    )


@pytest.fixture
def golden(request):
    """compare(name, text): equal to tests/golden/NAME, or rewrite it with --regen-golden."""
    regen = request.config.getoption("--regen-golden") or os.environ.get("DIGEST_REGEN_GOLDEN") == "1"

    def compare(name: str, text: str) -> None:
        path = GOLDEN / name
        if regen:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            return
        assert path.exists(), f"{path} is missing: run pytest --regen-golden once and review it"
        with open(path, encoding="utf-8", newline="") as handle:  # CRLF in an .eml is part of it
            expected = handle.read()
        assert text == expected, f"output differs from {path}; if the change is intended, run pytest --regen-golden"

    return compare


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files from a folder, plus a few misbehaving routes for tests of failures."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
    hung: set[str] = set()
    closing: threading.Event

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path in self.hung:
            self.closing.wait(PATIENCE)  # no answer while the test runs, however long it takes
        if path in self.routes:
            status, headers, body = self.routes[path]
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


class FeedServer:
    """A real HTTP server on 127.0.0.1 and a free port, serving a folder."""

    def __init__(self, folder: Path) -> None:
        handler = type("Handler", (_Handler,), {"routes": {}, "hung": set(), "closing": threading.Event()})
        self._handler = handler

        def factory(*args, **kwargs):
            return handler(*args, directory=str(folder), **kwargs)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), factory)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def route(self, path: str, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> str:
        """Answer ``path`` with this status and body; returns its URL."""
        self._handler.routes[path] = (status, headers or {"Content-Type": "application/rss+xml"}, body)
        return self.url(path)

    def hang(self, path: str) -> str:
        """Answer ``path`` only when the server closes, at the end of the test; returns its URL."""
        self._handler.hung.add(path)
        return self.url(path)

    def close(self) -> None:
        self._handler.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed_server():
    """Serves the checkout: feed_server.url("tests/fixtures/feeds/rss2.xml"), …("examples/sources/…")."""
    server = FeedServer(ROOT)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def example_settings():
    from digest.core.config import load

    return load(EXAMPLES / "digest.toml")
