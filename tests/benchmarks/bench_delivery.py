"""Delivery benchmarks, each measured against a reference run in the same go.

    python tests/benchmarks/bench_delivery.py personalize   (a) messages built per second, one core
    python tests/benchmarks/bench_delivery.py smtp          (b) `digest send` vs Postfix smtp-source into one smtp-sink
    python tests/benchmarks/bench_delivery.py memory        (c) peak memory of a dry run, 10,000 vs 200,000 subscribers
    python tests/benchmarks/bench_delivery.py all
    python tests/benchmarks/bench_delivery.py profile --engine sqlite|postgresql [--count N] [--out FILE]
                                                            cProfile of `digest send` / one `digest worker`

(b) holds digest against smtp-source sending messages of the mean size of those digest sent (20
variants, measured in the same run) over as many connections into the same sink. It needs Debian's
postfix package (smtp-sink, smtp-source); .ci/run installs it. The benchmark is not part of the test
suite. The queue's own figures (workers on PostgreSQL, enqueue, claims) are bench_queue.py's.
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

# The tests' shared helpers (tests/support), and the checkout's packages, wherever this is run from.
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from reference import VARIANTS, Checkout, fill, need_postfix, sent, smtp_source, smtp_table, uptime  # noqa: E402

from digest.core.config import load  # noqa: E402
from digest.delivery.queue import Claimed  # noqa: E402
from digest.delivery.send import Sender  # noqa: E402
from digest.pipeline.edition import prepare  # noqa: E402
from digest.pipeline.message import POLICY  # noqa: E402
from subscribers.store import Store  # noqa: E402
from subscribers.tokens import Tokens  # noqa: E402

from support.paths import DAY  # noqa: E402
from support.smtp import SmtpSink  # noqa: E402

HERE = Checkout.this()


def forty_item_settings(settings):
    """The example day cut to 40 items (the caps sum to 40) for a like-for-like figure."""
    caps = {"politique": 6, "economie": 8, "international": 6, "societe": 5, "culture": 5, "sport": 4, "tech": 4, "actualite": 1}
    return replace(settings, rubrics=tuple(replace(r, max_items=caps.get(r.key, 2)) for r in settings.rubrics),
                   layout=replace(settings.layout, more_max=0))


def bench_personalize(count: int = 100_000) -> None:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        settings = forty_item_settings(load(HERE.config(folder)))
        made = prepare(settings, DAY)
        items = len(made.edition.leads) + sum(len(s.items) for s in made.edition.sections)
        store = Store.open(settings.database)
        sender = Sender(settings, made, store, Tokens({1: b"k" * 32}, 1, settings.newsletter.list_id))
        t0 = time.perf_counter()
        for locale, rubrics in VARIANTS:
            sender.template(locale, rubrics)
        render_s = time.perf_counter() - t0
        dues = [Claimed(sender.edition, i + 1, f"reader{i:07d}@example.com", f"Lecteur {i}", *VARIANTS[i % 20], 1)
                for i in range(count)]
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


def bench_smtp(count: int = 20_000, connections: int = 10, runs: int = 3) -> None:
    """`digest send` of `count` readers (SQLite, the 20 variants) into smtp-sink, then smtp-source
    sending as many messages of their mean size into the same sink; `runs` times, medians."""
    need_postfix()
    ours, theirs, sizes, lines, cpus = [], [], [], [], []
    load = uptime()
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            sink = SmtpSink("-m", "1000", backlog=1024)  # the tests' smtp-sink, on a port it has bound
            try:
                path = HERE.config(folder, smtp_table(sink.port, connections, count))
                database = str(folder / "digest.db")
                HERE.make_store(database)
                fill(database, count)
                ran = HERE.measure("send", "-c", str(path), "--date", DAY.isoformat())
                ours.append(ran.seconds)
                cpus.append(ran.cpu)
                if ran.code != 0:
                    sys.exit(f"digest send failed: {ran.output}")
                lines = [line.strip() for line in ran.output.splitlines() if line.strip().startswith(("sent ", "elapsed"))]
                got = sent(path)
                if got.count != count:
                    sys.exit(f"digest send sent {got.count:,} of {count:,}")
                sizes.append(got.mean)
                theirs.append(smtp_source(sink.port, count, got.largest, round(got.mean), connections, folder))
            finally:
                sink.stop()
    median_ours, median_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"(b) SMTP: {count:,} messages (20 variants, mean {statistics.mean(sizes) / 1024:.1f} KiB), "
          f"{connections} connections, into one smtp-sink; {runs} runs, medians; load: {load}")
    for line in lines:
        print(f"    digest send (last run): {line}")
    print(f"    digest send, whole command (gather, render, enqueue, send): {median_ours:.1f} s = "
          f"{count / median_ours:,.0f} messages/s  (runs: {', '.join(f'{t:.1f}' for t in ours)} s)")
    print(f"    digest send's CPU (user + system, the whole command): {statistics.median(cpus):.1f} s = "
          f"{statistics.median(cpus) / count * 1e6:.0f} µs a message  (runs: {', '.join(f'{t:.1f}' for t in cpus)} s)")
    print(f"    smtp-source -d -s {connections}, messages of the same mean size: {median_theirs:.1f} s = "
          f"{count / median_theirs:,.0f} messages/s  (runs: {', '.join(f'{t:.1f}' for t in theirs)} s)")
    print(f"    ratio digest / smtp-source: {median_theirs / median_ours:.2f}  "
          f"(per run: {', '.join(f'{b / a:.2f}' for a, b in zip(ours, theirs, strict=True))})")


def bench_memory(sizes: tuple[int, ...] = (10_000, 200_000)) -> None:
    print("(c) peak memory (max RSS) of `digest send --dry-run`:")
    for count in sizes:
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            path = HERE.config(folder)
            database = str(folder / "digest.db")
            HERE.make_store(database)
            fill(database, count)
            db_size = Path(database).stat().st_size
            ran = HERE.measure("send", "-c", str(path), "--date", DAY.isoformat(), "--dry-run")
            print(f"    {count:>8,} subscribers (database {db_size / 2**20:5.1f} MiB): peak {ran.rss:6.1f} MiB, "
                  f"{ran.seconds:5.1f} s, exit {ran.code}")


def bench_profile(engine: str, count: int, connections: int, out: Path | None, top: int = 25) -> None:
    """`digest send` (SQLite) or one `digest worker` (PostgreSQL, the edition enqueued before) of `count`
    readers into smtp-sink under cProfile; the `top` functions by cumulative time, printed and written to `out`."""
    import pstats
    import signal
    import subprocess

    from support.databases import fresh_database

    need_postfix()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        sink = SmtpSink("-m", "1000", backlog=1024)
        try:
            with fresh_database(engine, folder) as database:
                path = HERE.config(folder, smtp_table(sink.port, connections, count))
                HERE.make_store(database)
                fill(database, count)
                stats = folder / "profile.out"
                profiled = [HERE.python, "-m", "cProfile", "-o", str(stats), "-m", "digest"]
                common = ["-c", str(path), "--database", database]
                if engine == "sqlite":
                    what = "digest send"
                    ran = subprocess.run([*profiled, "send", *common, "--date", DAY.isoformat()], capture_output=True,
                                         text=True, cwd=HERE.root, env=HERE.env())
                    if ran.returncode != 0:
                        sys.exit(f"digest send failed:\n{ran.stdout}{ran.stderr}")
                else:
                    what = "one digest worker"
                    done = HERE.digest("send", *common, "--date", DAY.isoformat(), "--enqueue-only")
                    if done.returncode != 0:
                        sys.exit(f"digest send --enqueue-only failed:\n{done.stdout}{done.stderr}")
                    worker = subprocess.Popen([*profiled, "worker", *common], stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True, cwd=HERE.root, env=HERE.env())
                    while sent_count(database) < count:
                        if worker.poll() is not None:
                            sys.exit(f"the worker stopped:\n{worker.communicate()[1]}")
                        time.sleep(0.1)  # a poll, not a pace
                    worker.send_signal(signal.SIGTERM)
                    worker.communicate(timeout=60)
                listing = io.StringIO()
                pstats.Stats(str(stats), stream=listing).sort_stats("cumulative").print_stats(top)
                if out is not None:  # the whole profile beside the listing, for pstats
                    out.with_suffix(".prof").write_bytes(stats.read_bytes())
        finally:
            sink.stop()
    text = (f"cProfile of {what} ({engine}), {count:,} readers, {connections} connections, into smtp-sink; "
            f"top {top} by cumulative time; {uptime()}\n" + listing.getvalue().split("\n", 1)[1].lstrip("\n"))
    print(text)
    if out is not None:
        out.write_text(text, encoding="utf-8")


def sent_count(database: str) -> int:
    from sqlalchemy import create_engine, text

    from digest.core.database import database_url

    engine = create_engine(database_url(database))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM deliveries WHERE status = 'sent'")).scalar_one()
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description="Delivery benchmarks")
    parser.add_argument("which", choices=["personalize", "smtp", "memory", "profile", "all"])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite",
                        help="profile: `digest send` on SQLite, or one `digest worker` on PostgreSQL")
    parser.add_argument("--out", type=Path, default=None, help="profile: also write the listing to this file")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--runs", type=int, default=3, help="runs of (b), medians reported (default 3)")
    args = parser.parse_args()
    if args.which in ("personalize", "all"):
        bench_personalize(args.count or 100_000)
    if args.which in ("smtp", "all"):
        bench_smtp(args.count or 20_000, runs=args.runs)
    if args.which in ("memory", "all"):
        bench_memory()
    if args.which == "profile":
        bench_profile(args.engine, args.count or 5_000, 10, args.out)
    print(f"(machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; peak RSS of this script "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
