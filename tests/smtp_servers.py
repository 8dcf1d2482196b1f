"""Real SMTP servers for delivery tests: aiosmtpd with a recording handler that misbehaves on
chosen commands, and Postfix's smtp-sink (Debian `postfix`, never started as a mail system)."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps every message and answers as the test tells it.

    rcpt[address] = ["451 4.7.1 Try again later", None, …]: one reply per attempt (None: accept);
    the last one repeats. data_replies: the same for DATA, for every message. data_delay: seconds to
    wait before answering DATA (a server that stops answering)."""

    messages: list[Received] = field(default_factory=list)
    rcpt: dict[str, list[str | None]] = field(default_factory=dict)
    data_replies: list[str | None] = field(default_factory=list)
    data_delay: float = 0.0
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sessions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _data_count: int = 0

    @staticmethod
    def _pick(replies: list[str | None], index: int) -> str | None:
        return replies[min(index, len(replies) - 1)] if replies else None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            index = self.attempts[address]
            self.attempts[address] += 1
        reply = self._pick(self.rcpt.get(address, []), index)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self.lock:
            index = self._data_count
            self._data_count += 1
        reply = self._pick(self.data_replies, index)
        if reply:
            return reply
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: queued"

    def by_recipient(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = defaultdict(list)
        for message in self.messages:
            for rcpt in message.rcpt_tos:
                out[rcpt].append(message)
        return out


class SmtpServer:
    """aiosmtpd on 127.0.0.1 and a free port, in its own thread."""

    def __init__(self, handler: Recorder | None = None) -> None:
        self.handler = handler or Recorder()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=10)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


class SmtpSink:
    """Postfix's smtp-sink on a free port; `options` make it fail (-r RCPT: 4xx, -f RCPT: 5xx, -q DATA:
    hang up). With `dump`, every message is written to a file in that folder."""

    def __init__(self, *options: str, dump: bool = False, backlog: int = 256) -> None:
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        if not os.path.exists(binary):
            raise RuntimeError("smtp-sink is missing: install Debian's postfix package (.ci/run does)")
        self.port = free_port()
        args = [binary]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # smtp-sink refuses to run as root
        self.dump: Path | None = None
        if dump:
            # smtp-sink runs as nobody: the folder must be reachable by it, which pytest's tmp is not.
            self.dump = Path(tempfile.mkdtemp(prefix="digest-sink-"))
            os.chmod(self.dump, 0o777)
            args += ["-d", str(self.dump / "%Y%m%d%H/%M.")]
        args += [*options, f"127.0.0.1:{self.port}", str(backlog)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"smtp-sink exited: {self.process.stderr.read().decode()}")
            time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def messages(self) -> list[bytes]:
        if self.dump is None:
            return []
        return [p.read_bytes() for p in sorted(self.dump.rglob("*")) if p.is_file()]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self.dump is not None:
            shutil.rmtree(self.dump, ignore_errors=True)
