"""`digest serve` and `digest preview` in a subprocess, on a port they really bound.

The port is picked free, then bound by the subprocess: another process may take it in between. So a
server counts as started only when it says it listens (uvicorn's "Uvicorn running on …" line, written
once the socket is bound), and one that finds the port taken is started again on another port. Its
output is read as it comes, so that a full pipe never stops it, and every pipe is closed at the end.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable

from conftest import ROOT
from ports import PATIENCE, free_port


class Served:
    """Start with `Served(lambda port: [argv…])`; stop with `stop()`, which returns (stdout, stderr)."""

    def __init__(self, command: Callable[[int], list[str]], env: dict[str, str] | None = None) -> None:
        for _ in range(5):
            self.port = free_port()
            self._start(command(self.port), env)
            if self._listening():
                return
        raise AssertionError("no free port five times in a row")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, argv: list[str], env: dict[str, str] | None) -> None:
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self._out: list[str] = []
        self._err: list[str] = []
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.process.stdout, self._out), (self.process.stderr, self._err))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line)
                self._changed.notify_all()
        with self._changed:
            lines.append("")  # end of the stream
            self._changed.notify_all()

    def _listening(self) -> bool:
        """True once it listens on self.port; False if the port was taken; an AssertionError otherwise."""
        running = f"Uvicorn running on http://127.0.0.1:{self.port}"
        with self._changed:
            ended = self._changed.wait_for(lambda: any(running in line for line in self._err)
                                           or (self._err and self._err[-1] == ""), PATIENCE)
        if not ended:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"the server did not start: {self.err}")
        if any(running in line for line in self._err):
            return True
        _, err = self.stop(signal.SIGKILL)
        if "address already in use" in err:
            return False
        raise AssertionError(f"the server did not start: {err}")

    def first_line(self) -> str:
        """The first line it wrote on stdout ("" if it wrote none)."""
        with self._changed:
            assert self._changed.wait_for(lambda: self._out, PATIENCE), "nothing on stdout"
            return self._out[0]

    @property
    def err(self) -> str:
        with self._changed:
            return "".join(self._err)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[str, str]:
        """Send `sig` (unless it has ended already), wait for the end, return everything it wrote."""
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
        return "".join(self._out), "".join(self._err)

    @property
    def returncode(self) -> int | None:
        return self.process.returncode
