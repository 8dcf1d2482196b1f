"""`digest serve` and `digest preview` in a subprocess, on a port they really bound.

The port is picked free, then bound by the subprocess: another process may take it in between. So a
server counts as started only when it says it listens (uvicorn's "Uvicorn running on …" line, written
once the socket is bound), and one that finds the port taken is started again on another port. Its
output is read as it comes, line by line, by a thread per stream: a full pipe never stops it, and a test
can wait for a log line instead of sleeping. The log is kept as bytes, what a log file would hold, so
that a test can tell a raw byte from its escape; every pipe is closed at the end.
"""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from support.cli import environment
from support.paths import ROOT
from support.ports import PATIENCE, free_port


class Served:
    """`digest ARGS --port N` running: `Served("serve", "-c", config)` (or serve(config) below); stop it
    with `stop()`, which returns its whole stderr, then read both streams as text with `output()`."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        for _ in range(5):
            self.port = free_port()
            self._start([*args, "--port", str(self.port)], env)
            if self._listening():
                return
        raise AssertionError("no free port five times in a row")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def connect(self, timeout: float = 30) -> socket.socket:
        """A raw connection to the server, for what an HTTP client would not send."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def _start(self, args: list[str], env: dict[str, str] | None) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "digest", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, cwd=ROOT,
                                        env=environment({"PYTHONUNBUFFERED": "1", **(env or {})}))
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.process.stdout, self._out), (self.process.stderr, self._err))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[bytes], lines: list[bytes]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line)
                self._changed.notify_all()
        with self._changed:
            lines.append(b"")  # end of the stream
            self._changed.notify_all()

    def _listening(self) -> bool:
        """True once it listens on self.port; False if the port was taken; an AssertionError otherwise."""
        running = f"Uvicorn running on http://127.0.0.1:{self.port}".encode()
        with self._changed:
            ended = self._changed.wait_for(lambda: any(running in line for line in self._err)
                                           or (self._err and self._err[-1] == b""), PATIENCE)
            started = any(running in line for line in self._err)
        if started:
            return True
        log = self.stop(signal.SIGKILL)
        if ended and b"address already in use" in log.lower():
            return False
        raise AssertionError(f"the server did not start: {log!r}")

    def first_line(self) -> str:
        """The first line it wrote on stdout ("" if it wrote none)."""
        with self._changed:
            assert self._changed.wait_for(lambda: self._out, PATIENCE), "nothing on stdout"
            return self._out[0].decode("utf-8")

    def count(self, pattern: bytes) -> int:
        """How many lines of its stderr so far match the regular expression `pattern`."""
        with self._changed:
            return sum(1 for line in self._err if re.search(pattern, line))

    def has(self, pattern: bytes) -> bool:
        return self.count(pattern) > 0

    def wait_for(self, pattern: bytes, count: int = 1, timeout: float = PATIENCE) -> None:
        """Until `count` log lines match `pattern` (a request is logged once its answer is sent)."""
        with self._changed:
            if not self._changed.wait_for(lambda: sum(1 for line in self._err if re.search(pattern, line)) >= count,
                                          timeout):
                raise AssertionError(f"no {count} log lines like {pattern!r} in {timeout} s: {b''.join(self._err)!r}")

    @property
    def log(self) -> bytes:
        """Its stderr so far, as bytes."""
        with self._changed:
            return b"".join(self._err)

    def stop(self, sig: int = signal.SIGTERM) -> bytes:
        """Send `sig` (unless it has ended already), wait for the end, return its whole stderr."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(PATIENCE)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for reader in self._readers:
                reader.join(PATIENCE)
            self.process.stdout.close()
            self.process.stderr.close()
        return self.log

    def output(self) -> tuple[str, str]:
        """(stdout, stderr) as text, once it has stopped."""
        with self._changed:
            return b"".join(self._out).decode("utf-8"), b"".join(self._err).decode("utf-8")

    @property
    def returncode(self) -> int | None:
        return self.process.returncode


def serve(config: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """`digest serve -c CONFIG ARGS`, on a port it has bound."""
    return Served("serve", "-c", str(config), *args, env=env)


def preview(config: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """`digest preview -c CONFIG ARGS`, on a port it has bound."""
    return Served("preview", "-c", str(config), *args, env=env)
