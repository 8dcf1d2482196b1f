"""A real HTTP server on 127.0.0.1 for sources fetched over the network: it serves a folder, and routes a
test sets up to answer with a status, headers and body of its choosing, or not at all."""
from __future__ import annotations

import http.server
import threading
from pathlib import Path

from support.ports import PATIENCE


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
