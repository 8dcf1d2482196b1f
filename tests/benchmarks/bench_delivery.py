"""Delivery benchmarks, each measured against a reference run in the same go.

    python tests/benchmarks/bench_delivery.py personalize   (a) messages built per second, one core
    python tests/benchmarks/bench_delivery.py smtp          (b) `digest send` vs Postfix smtp-source into one smtp-sink
    python tests/benchmarks/bench_delivery.py memory        (c) peak memory of a dry run, 10,000 vs 200,000 subscribers
    python tests/benchmarks/bench_delivery.py all

(b) needs Debian's postfix package (smtp-sink, smtp-source); .ci/run installs it, the benchmark is
not part of the test suite.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

# The tests' shared helpers (tests/support), and the checkout's packages, wherever this is run from.
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from sqlalchemy import insert  # noqa: E402

from digest.core.config import load  # noqa: E402
from digest.delivery.ledger import Due  # noqa: E402
from digest.delivery.send import Sender  # noqa: E402
from digest.pipeline.edition import prepare  # noqa: E402
from digest.pipeline.message import POLICY  # noqa: E402
from subscribers.schema import subscribers as subscribers_table  # noqa: E402
from subscribers.store import Store  # noqa: E402
from subscribers.tokens import Tokens  # noqa: E402

from support import cli  # noqa: E402
from support.newsroom import config_text  # noqa: E402
from support.paths import DAY  # noqa: E402
from support.smtp import SmtpSink  # noqa: E402

LOCALES = ["fr", "en", "ar"]
# 20 variants: 3 locales × 7 rubric choices, less one.
CHOICES = ["", "economie", "politique,international", "sport", "culture,societe", "economie,sport,tech", "international"]
VARIANTS = [(loc, choice) for loc in LOCALES for choice in CHOICES][:20]


def config(folder: Path, smtp: str = "") -> Path:
    """The example newsroom's digest.toml with its store, key and outbox in `folder` (as the tests')."""
    path = folder / "digest.toml"
    path.write_text(config_text(folder, smtp), encoding="utf-8")
    return path


def fill_store(database: str, count: int) -> None:
    """`count` active subscribers spread over the 20 variants, inserted in one transaction."""
    store = Store.open(database)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    rows = []
    with store.engine.begin() as conn:
        for i in range(count):
            locale, rubrics = VARIANTS[i % len(VARIANTS)]
            rows.append({"email": f"reader{i:07d}@example.com", "name": f"Lecteur {i}", "locale": locale,
                         "timezone": "Africa/Casablanca", "rubrics": rubrics, "status": "active",
                         "created_at": now, "updated_at": now})
            if len(rows) == 10_000:
                conn.execute(insert(subscribers_table), rows)
                rows = []
        if rows:
            conn.execute(insert(subscribers_table), rows)
    store.engine.dispose()


def forty_item_settings(settings):
    """The example day cut to 40 items (the caps sum to 40) for a like-for-like figure."""
    caps = {"politique": 6, "economie": 8, "international": 6, "societe": 5, "culture": 5, "sport": 4, "tech": 4, "actualite": 1}
    return replace(settings, rubrics=tuple(replace(r, max_items=caps.get(r.key, 2)) for r in settings.rubrics),
                   layout=replace(settings.layout, more_max=0))


def bench_personalize(count: int = 100_000) -> None:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        settings = forty_item_settings(load(config(folder)))
        made = prepare(settings, DAY)
        items = len(made.edition.leads) + sum(len(s.items) for s in made.edition.sections)
        store = Store.open(settings.database)
        sender = Sender(settings, made, store, Tokens({1: b"k" * 32}, 1, settings.newsletter.list_id))
        t0 = time.perf_counter()
        for locale, rubrics in VARIANTS:
            sender.template(locale, rubrics)
        render_s = time.perf_counter() - t0
        dues = [Due(i + 1, f"reader{i:07d}@example.com", f"Lecteur {i}", *VARIANTS[i % 20], 0) for i in range(count)]
        t0 = time.perf_counter()
        size = 0
        for due in dues:
            size += len(sender.message_for(due))
        ours = time.perf_counter() - t0

        # Reference: the plain way, a new EmailMessage per recipient (as listmonk-style tools do).
        rendered = {key: sender.renderer.render(made.edition, sender.variant(*key)) for key in VARIANTS}
        sample = dues[:2_000]
        t0 = time.perf_counter()
        for due in sample:
            r = rendered[(due.locale, due.rubrics)]
            msg = EmailMessage(policy=POLICY)
            msg["From"], msg["To"], msg["Subject"] = settings.newsletter.sender, due.email, r.subject
            msg.set_content(r.text)
            msg.add_alternative(r.html, subtype="html")
            msg.as_bytes()
        plain = (time.perf_counter() - t0) / len(sample) * count
    print(f"(a) personalise: {items}-item edition, {sender.compiles} variants rendered in {render_s * 1000:.0f} ms")
    print(f"    {count:,} messages ({size / count / 1024:.0f} KiB each) in {ours:.2f} s: {count / ours:,.0f} messages/s on one core "
          f"({ours / count * 1e6:.1f} µs each)")
    print(f"    reference, EmailMessage per recipient: {count / plain:,.0f} messages/s; ours is {plain / ours:.0f}× faster")


def bench_smtp(count: int = 20_000, connections: int = 10) -> None:
    if not shutil.which("smtp-sink"):
        sys.exit("smtp-sink not found: apt-get install postfix (it is never started as a mail system)")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        sink = SmtpSink("-m", "1000", backlog=1024)  # the tests' smtp-sink, on a port it has bound
        try:
            port = sink.port
            smtp = (f'host = "127.0.0.1"\nport = {port}\ntls = "none"\nconnections = {connections}\n'
                    f"messages_per_connection = {count}\n")
            path = config(folder, smtp)
            fill_store(str(folder / "digest.db"), count)
            t0 = time.perf_counter()
            result = cli.digest("send", "-c", str(path), "--date", DAY.isoformat(), timeout=None)
            ours = time.perf_counter() - t0
            if result.returncode != 0:
                sys.exit(f"digest send failed: {result.stdout}{result.stderr}")
            summary = [line for line in result.stdout.splitlines() if "elapsed" in line or "sent" in line]

            # Reference: smtp-source sends a message of the same size over the same number of connections.
            sample = folder / "sample.eml"
            dry = cli.digest("send", "-c", str(path), "--date", DAY.isoformat(), "--test-to", "sample@example.com",
                             "--outbox", str(folder / "sample"), timeout=None)
            eml = next((folder / "sample").rglob("*.eml"))
            sample.write_bytes(eml.read_bytes().replace(b"\r\n", b"\n"))
            size = eml.stat().st_size
            t0 = time.perf_counter()
            subprocess.run(["smtp-source", "-d", "-s", str(connections), "-m", str(count), "-F", str(sample),
                            "-f", "digest@lequotidien.example.ma", "-t", "reader@example.com", f"127.0.0.1:{port}"],
                           check=True, capture_output=True)
            reference = time.perf_counter() - t0
            del dry
        finally:
            sink.stop()
    print(f"(b) SMTP: {count:,} messages of about {size / 1024:.0f} KiB, {connections} connections, into one smtp-sink")
    for line in summary:
        print(f"    digest send: {line.strip()}")
    print(f"    digest send, whole command (gather, render, ledger, send): {ours:.1f} s = {count / ours:,.0f} messages/s")
    print(f"    smtp-source -d -s {connections}: {reference:.1f} s = {count / reference:,.0f} messages/s")
    print(f"    ratio ours / smtp-source: {reference / ours:.2f}")


def bench_memory(sizes=(10_000, 200_000)) -> None:
    print("(c) peak memory (max RSS) of `digest send --dry-run`:")
    for count in sizes:
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            path = config(folder)
            fill_store(str(folder / "digest.db"), count)
            db_size = (folder / "digest.db").stat().st_size
            probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
                     "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
            t0 = time.perf_counter()
            out = cli.python("-c", probe, sys.executable, "-m", "digest", "send", "-c", str(path),
                             "--date", DAY.isoformat(), "--dry-run", timeout=None)
            if out.returncode != 0:
                sys.exit(f"the memory probe failed: {out.stderr}")
            elapsed = time.perf_counter() - t0
            rss_kib, code = map(int, out.stdout.split())
            print(f"    {count:>8,} subscribers (database {db_size / 2**20:5.1f} MiB): peak {rss_kib / 1024:6.1f} MiB, "
                  f"{elapsed:5.1f} s, exit {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Delivery benchmarks")
    parser.add_argument("which", choices=["personalize", "smtp", "memory", "all"])
    parser.add_argument("--count", type=int, default=None)
    args = parser.parse_args()
    if args.which in ("personalize", "all"):
        bench_personalize(args.count or 100_000)
    if args.which in ("smtp", "all"):
        bench_smtp(args.count or 20_000)
    if args.which in ("memory", "all"):
        bench_memory()
    print(f"(machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; peak RSS of this script "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
