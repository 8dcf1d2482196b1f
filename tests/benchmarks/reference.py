"""What the delivery benchmarks share: a checkout to run `digest` from (this one, or an older one
beside it), readers filled by set-based SQL, the mean size of the messages digest really sent, and
the reference every send is held against: Postfix's smtp-source sending messages of that same size
into the same smtp-sink, over as many connections.

Imported by bench_delivery.py and bench_queue.py, which put the checkout and tests/ on the path first.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, select, text

from digest.core.config import load
from digest.core.database import database_url
from digest.delivery.compose import Composer
from digest.delivery.editions import Editions
from digest.delivery.schema import deliveries
from subscribers.schema import subscribers
from subscribers.store import Store
from subscribers.tokens import Tokens, load_keys

from support import cli
from support.paths import DAY, ROOT

LOCALES = ["fr", "en", "ar"]
# 20 variants: 3 locales × 7 rubric choices, less one; readers take them in turn.
CHOICES = ["", "economie", "politique,international", "sport", "culture,societe", "economie,sport,tech", "international"]
VARIANTS = [(loc, choice) for loc in LOCALES for choice in CHOICES][:20]
SENDER = "digest@lequotidien.example.ma"


def need_postfix() -> None:
    if not (shutil.which("smtp-sink") and shutil.which("smtp-source")):
        sys.exit("smtp-sink or smtp-source not found: apt-get install postfix (it is never started as a mail system)")


def smtp_table(port: int, connections: int, messages: int) -> str:
    """digest.toml's [smtp] for a local smtp-sink: no TLS, connections kept for the whole edition (as
    smtp-source -d keeps its own)."""
    return (f'host = "127.0.0.1"\nport = {port}\ntls = "none"\nconnections = {connections}\n'
            f"messages_per_connection = {messages}\n")


@dataclass(frozen=True)
class Checkout:
    """A checkout of digest with its own venv: commands run with its Python and its packages only."""

    root: Path
    python: str

    @classmethod
    def this(cls) -> Checkout:
        return cls(ROOT, sys.executable)

    @classmethod
    def at(cls, root: Path) -> Checkout:
        python = root / ".venv" / "bin" / "python"
        if not python.exists():
            sys.exit(f"{python} is missing: cd {root} && python3 -m venv .venv && .venv/bin/pip install -e '.[test]'")
        return cls(root, str(python))

    def env(self) -> dict[str, str]:
        # The tests' environment (no DIGEST_* of the developer, a pinned Date), with this checkout's
        # packages and nothing else first on the path.
        return {**cli.environment(), "PYTHONPATH": str(self.root)}

    def run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([self.python, *args], capture_output=True, text=True, cwd=self.root, env=self.env(),
                                timeout=timeout)
        if "Traceback" in result.stderr:
            sys.exit(f"{' '.join(args[:4])} … failed:\n{result.stderr}")
        return result

    def digest(self, *args: str) -> subprocess.CompletedProcess:
        return self.run("-m", "digest", *args)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([self.python, "-m", "digest", *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, cwd=self.root, env=self.env())

    def config(self, folder: Path, smtp: str = "", delivery: str = "") -> Path:
        """This checkout's tests' digest.toml (examples/digest.toml, its store, key and outbox in
        `folder`), written as `folder`/digest.toml."""
        snippet = ("import sys; from pathlib import Path; sys.path.insert(0, 'tests'); "
                   "from support.newsroom import config_text; "
                   "print(config_text(Path(sys.argv[1]), sys.argv[2], sys.argv[3]), end='')")
        written = self.run("-c", snippet, str(folder), smtp, delivery)
        path = folder / "digest.toml"
        path.write_text(written.stdout, encoding="utf-8")
        return path

    def make_store(self, database: str) -> None:
        """The database's schema, as this checkout's migrations make it."""
        self.run("-c", "import sys; from subscribers.store import Store; Store.open(sys.argv[1]).close()", database)

    def measure(self, *args: str) -> Ran:
        """`digest ARGS` run to its end, measured: that process's own figures (wait4), not its parent's."""
        with tempfile.TemporaryFile("w+") as out:
            started = time.perf_counter()
            process = subprocess.Popen([self.python, "-m", "digest", *args], stdout=out, stderr=subprocess.STDOUT,
                                       text=True, cwd=self.root, env=self.env())
            _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            output = out.read()
        if "Traceback" in output:
            sys.exit(f"digest {' '.join(args[:2])} … failed:\n{output}")
        return Ran(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode, output)


@dataclass(frozen=True)
class Ran:
    """A command's wall time and CPU time (user + system) in seconds, peak memory (max RSS) in MiB,
    exit code and output (stdout and stderr). On a shared machine the CPU time moves less than the
    wall time: others' work takes turns on the cores, not cycles from this process."""

    seconds: float
    cpu: float
    rss: float
    code: int
    output: str


def fill(database: str, count: int, zones: Sequence[str] = ("Africa/Casablanca",)) -> None:
    """`count` active readers, reader0000000@example.com …, taking the 20 variants in turn and the
    zones in turn (every 20), in one set-based INSERT: a million in seconds, not through Python. The
    schema must exist (Checkout.make_store)."""
    url = database_url(database)
    engine = create_engine(url)
    variants = " UNION ALL ".join(f"SELECT {i} AS k, '{loc}' AS locale, '{rub}' AS rubrics"
                                  for i, (loc, rub) in enumerate(VARIANTS))
    places = " UNION ALL ".join(f"SELECT {i} AS k, '{zone}' AS zone" for i, zone in enumerate(zones))
    if engine.dialect.name == "postgresql":
        numbers = f"SELECT g AS i FROM generate_series(0, {count - 1}) AS g"
        address = "'reader' || lpad(n.i::text, 7, '0') || '@example.com'"
        moment = "TIMESTAMPTZ '2026-11-01 00:00:00+00'"
    else:  # SQLite: a recursive CTE counts as fast
        numbers = f"SELECT i FROM (WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {count - 1}) SELECT i FROM c)"
        address = "printf('reader%07d@example.com', n.i)"
        moment = "'2026-11-01 00:00:00.000000'"
    statement = text(
        "INSERT INTO subscribers (email, name, locale, timezone, rubrics, status, created_at, updated_at) "
        f"SELECT {address}, 'Lecteur ' || n.i, v.locale, z.zone, v.rubrics, 'active', {moment}, {moment} "
        f"FROM ({numbers}) AS n JOIN ({variants}) AS v ON v.k = n.i % 20 "
        f"JOIN ({places}) AS z ON z.k = (n.i / 20) % {len(zones)}")
    with engine.begin() as conn:
        conn.execute(statement)
    if engine.dialect.name == "postgresql":  # a list grown over months has been sampled by autovacuum long ago
        with engine.begin() as conn:
            conn.execute(text("ANALYZE subscribers"))
    engine.dispose()


@dataclass(frozen=True)
class Sent:
    """What an edition's readers got: how many messages, their mean size (bytes as stored: CRLF, not
    dot-stuffed; what smtp-source's -F file stands for) and the largest, to cut the reference from."""

    count: int
    mean: float
    largest: bytes


def sent(config: Path, database: str | None = None, limit: int | None = None) -> Sent:
    """Every message of the day's edition that the ledger says was sent (the first `limit`), made
    again from the frozen edition (the same bytes a worker made, the Message-ID and token included).
    `database`: the one given with --database, if any."""
    settings = load(config)
    store = Store.open(database or settings.database, create=False)
    keys, current = load_keys(settings.secret_file)
    editions = Editions(store)
    frozen = editions.open_edition(settings.newsletter.list_id, DAY)
    assert frozen is not None, "nothing was enqueued"
    composer = Composer(settings, frozen, Tokens(keys, current, settings.newsletter.list_id), editions,
                        editions.variants(frozen))
    query = (select(subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.locale, subscribers.c.rubrics)
             .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
             .where(deliveries.c.edition == frozen.key, deliveries.c.status == "sent"))
    if limit is not None:
        query = query.limit(limit)
    count, total, largest = 0, 0, b""
    with store.engine.connect() as conn:
        for row in conn.execute(query):
            data = composer.compose(row.id, row.email, row.name, row.locale, row.rubrics).data
            count, total = count + 1, total + len(data)
            if len(data) > len(largest):
                largest = data
    store.close()
    return Sent(count, total / max(1, count), largest)


def sample(message: bytes, size: int) -> bytes:
    """smtp-source's -F file: `message` (CRLF) cut or padded to `size` bytes, in LF-ended lines (it
    sends each with CRLF, dot-stuffed as digest's are)."""
    out: list[bytes] = []
    left = size
    for line in message.split(b"\r\n"):
        if len(line) + 2 > left:
            break
        out.append(line)
        left -= len(line) + 2
    while left >= 2:  # padding, in lines no longer than the body's
        line = b"x" * min(76, left - 2)
        out.append(line)
        left -= len(line) + 2
    return b"".join(line + b"\n" for line in out)


def smtp_source(port: int, count: int, message: bytes, size: int, connections: int, folder: Path) -> float:
    """Seconds smtp-source takes to send `count` messages of `size` bytes over `connections`
    connections, each kept open (-d)."""
    path = folder / "reference.eml"
    path.write_bytes(sample(message, size))
    started = time.perf_counter()
    subprocess.run(["smtp-source", "-d", "-s", str(connections), "-m", str(count), "-F", str(path), "-f", SENDER,
                    "-t", "reader@example.com", f"127.0.0.1:{port}"], check=True, capture_output=True)
    return time.perf_counter() - started


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def uptime() -> str:
    """The machine's load as `uptime` says it: the machine is shared, and every figure depends on it."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
