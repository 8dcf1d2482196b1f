"""Real SMTP servers for delivery tests: aiosmtpd with a recording handler that misbehaves on
chosen commands, and Postfix's smtp-sink (Debian `postfix`, never started as a mail system).

Ports: aiosmtpd binds port 0 itself and reports the port it got; smtp-sink, which cannot, is started on
a free port and recognised by a greeting of its own, and started again on another port in the rare case
that another process took that one first."""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

from support.ports import PATIENCE, free_port


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
    wait before answering DATA (a server that stops answering). pipelining: offer PIPELINING (RFC
    2920), as Postfix does; aiosmtpd reads pipelined commands either way, but does not say so."""

    messages: list[Received] = field(default_factory=list)
    rcpt: dict[str, list[str | None]] = field(default_factory=dict)
    data_replies: list[str | None] = field(default_factory=list)
    data_delay: float = 0.0
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sessions: int = 0
    pipelining: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    _data_count: int = 0

    @staticmethod
    def _pick(replies: list[str | None], index: int) -> str | None:
        return replies[min(index, len(replies) - 1)] if replies else None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
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


@dataclass
class Holding(Recorder):
    """A Recorder that holds the DATA reply of every message from the `hold_from`-th on (counting from
    0) until `release` is set: a relay that stops answering exactly where the test says, whatever the
    machine's load. `held` is set when the first message is held."""

    hold_from: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    _arrived: int = 0

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            index = self._arrived
            self._arrived += 1
        if index >= self.hold_from:
            self.held.set()
            deadline = time.monotonic() + PATIENCE
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


class _PortZeroController(Controller):
    """aiosmtpd's Controller, listening on a port the kernel picks as it binds: no other process can
    take it between choosing and binding."""

    def _create_server(self):
        async def create():
            server = await self.loop.create_server(self._factory_invoker, host=self.hostname, port=0,
                                                   ssl=self.ssl_context)
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


class SmtpServer:
    """aiosmtpd on 127.0.0.1 and a port of its own, in its own thread."""

    def __init__(self, handler: Recorder | None = None, **options) -> None:
        self.handler = handler or Recorder()
        self.controller = _PortZeroController(self.handler, hostname="127.0.0.1", port=0, ready_timeout=PATIENCE,
                                              **options)
        self.controller.start()
        self.port: int = self.controller.port

    def stop(self) -> None:
        if isinstance(self.handler, Holding):
            self.handler.release.set()
        self.controller.stop()


class Tap:
    """A TCP relay on 127.0.0.1 in front of a server, keeping what passes in the order it passed:
    `seen` is a list of ("client" | "server", bytes, the connection's number from 0), one item per
    read. What each side wrote before it heard the other is on the record."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.seen: list[tuple[str, bytes, int]] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # stopped
            server = socket.create_connection(("127.0.0.1", self.target), timeout=PATIENCE)
            with self.lock:
                number = len(self.sockets) // 2
                self.sockets += [client, server]
            for source, sink, side in ((client, server, "client"), (server, client, "server")):
                pump = threading.Thread(target=self._pump, args=(source, sink, side, number), daemon=True)
                self.threads.append(pump)
                pump.start()

    def _pump(self, source: socket.socket, sink: socket.socket, side: str, number: int) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                with self.lock:
                    self.seen.append((side, chunk, number))
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)  # the end passed on: the other side closes in its turn

    def first(self, side: str, marker: bytes) -> int:
        """The index in `seen` of the first read of `side` holding `marker` (ValueError: none)."""
        with self.lock:
            for index, (who, chunk, _) in enumerate(self.seen):
                if who == side and marker in chunk:
                    return index
        raise ValueError(f"the {side} never sent {marker!r}")

    def sent(self, side: str, number: int) -> bytes:
        """All that `side` sent on connection `number`."""
        with self.lock:
            return b"".join(chunk for who, chunk, n in self.seen if who == side and n == number)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.listener.close()
        with self.lock:
            sockets = list(self.sockets)
        for each in sockets:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
        for thread in list(self.threads):
            thread.join(PATIENCE)
        for each in sockets:
            each.close()


@dataclass(frozen=True)
class Arrival:
    """A message as smtp-sink took it: its envelope's recipients, its Message-ID, and when its last
    byte was written (epoch seconds)."""

    recipients: tuple[str, ...]
    message_id: str
    at: float


class SmtpSink:
    """Postfix's smtp-sink on a free port; `options` make it fail (-r RCPT: 4xx, -f RCPT: 5xx, -q DATA:
    hang up). With `dump`, every message is written to a file in that folder."""

    def __init__(self, *options: str, dump: bool = False, backlog: int = 256) -> None:
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        if not os.path.exists(binary):
            raise RuntimeError("smtp-sink is missing: install Debian's postfix package (.ci/run does)")
        args = [binary]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # smtp-sink refuses to run as root
        self.dump: Path | None = None
        if dump:
            # smtp-sink runs as nobody: the folder must be reachable by it, which pytest's tmp is not.
            self.dump = Path(tempfile.mkdtemp(prefix="digest-sink-"))
            os.chmod(self.dump, 0o777)
            args += ["-d", str(self.dump / "%Y%m%d%H/%M.")]
        # Its own name in the greeting: a server answering on the port is this one, not another
        # process's that took the port between free_port() and smtp-sink's bind.
        self.name = f"sink-{uuid.uuid4().hex[:12]}.test"
        args += ["-h", self.name, *options]
        for _ in range(5):
            self.port = free_port()
            self.process = subprocess.Popen([*args, f"127.0.0.1:{self.port}", str(backlog)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._started():
                return
        raise RuntimeError("smtp-sink found no free port five times in a row")

    def _started(self) -> bool:
        """True once this smtp-sink greets on self.port; False if the port was taken (it exited)."""
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace")
                self.process.stderr.close()
                if "in use" in error:
                    return False
                raise RuntimeError(f"smtp-sink exited: {error}")
            try:
                # (A short wait per try: whoever else may hold the port need not greet at all.)
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    greeting = sock.recv(512).decode(errors="replace")
                if self.name in greeting:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("smtp-sink did not start")

    def messages(self) -> list[bytes]:
        if self.dump is None:
            return []
        return [p.read_bytes() for p in sorted(self.dump.rglob("*")) if p.is_file()]

    def arrivals(self) -> list[Arrival]:
        """Each message dumped (see `dump`), read no further than its headers: thousands of them cost
        little. smtp-sink deletes the file of a transaction cut off before its end, and closes it
        before it answers the final dot: every file left is a message the relay took whole (its
        sender may not have heard the reply, if it died meanwhile). Call it once the senders are
        done: a file may be half written until then."""
        assert self.dump is not None, "arrivals() needs SmtpSink(dump=True)"
        found = []
        for path in self.dump.rglob("*"):
            if not path.is_file():
                continue
            with open(path, "rb") as handle:
                head = handle.read(16384).split(b"\n\n", 1)[0]
            recipients = tuple(r.decode() for r in re.findall(rb"(?m)^X-Rcpt-Args: <([^>]*)>", head))
            message_id = re.search(rb"(?mi)^Message-ID: *(<[^>]*>)", head)
            found.append(Arrival(recipients, message_id.group(1).decode() if message_id else "", path.stat().st_mtime))
        return sorted(found, key=lambda arrival: arrival.at)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stderr.close()
        if self.dump is not None:
            shutil.rmtree(self.dump, ignore_errors=True)
