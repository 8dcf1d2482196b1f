"""The whole evening at a million readers on one machine (issue 14, point 6), each step against a
reference doing the same work in the same run:

    python tests/benchmarks/bench_evening.py                          1,000,000 readers, 100,000 sent
    python tests/benchmarks/bench_evening.py --readers 20000 --send 2000     the same in a minute

    step                               reference
    digest subscribers import FILE     Python's csv + sqlite3 executemany into the same schema
    digest send --enqueue-only         one INSERT … SELECT of a pending row per active reader (sqlite3)
    digest send --dry-run              sqlite3 reading the same readers, each message made from the mean
                                       message by one HMAC token and a bytes join (the least a
                                       personalised message costs)
    digest send (the first --send)     Postfix's smtp-source sending as many messages of the same mean
                                       size into the same smtp-sink, over as many connections

The list is a CSV of --readers readers made here: the 20 variants in turn, six time zones, 3 %
unsubscribed and 1 % bounced. "The first 100,000": the readers who chose to get the edition as soon
as it is out (delivery_time asap); every other reader waits for the newsletter's hour, 07:00 where
they live ([delivery] local_time), the edition being enqueued at 21:30 in Casablanca: `digest send`
sends the ones due now and leaves the others to the morning, as it does every evening. No option of
the send path is needed for it.

Each figure is the command's wall time and its own peak memory (max RSS, by GNU time); SQLite, in
a temporary folder. Needs Debian's postfix package (smtp-sink, smtp-source).
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The tests' shared helpers (tests/support), and the checkout's packages, wherever this is run from.
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from reference import VARIANTS, Checkout, need_postfix, sample, smtp_table, uptime  # noqa: E402
from reference import sent as messages_sent  # noqa: E402

from support.paths import DAY  # noqa: E402
from support.smtp import SmtpSink  # noqa: E402

HERE = Checkout.this()
ZONES = ("Africa/Casablanca", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Pacific/Auckland", "America/Los_Angeles")
EVENING = "2026-11-29T21:30:00+01:00"  # the edition enqueued at 21:30 in Casablanca,
SENDING = "2026-11-29T21:40:00+01:00"  # and sent a little later (the asap readers' rows due from the enqueue)
CONNECTIONS = 10

# The references, each run as its own process with this checkout's Python (its own peak memory).
IMPORT = """
import csv, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
with open(sys.argv[2], newline="", encoding="utf-8") as f:
    rows = csv.reader(f)
    next(rows)
    with conn:
        conn.executemany(
            "INSERT INTO subscribers (email, name, locale, timezone, rubrics, status, delivery_time, created_at, "
            "updated_at, bounce_score) VALUES (?, ?, ?, ?, ?, ?, NULLIF(?, ''), '2026-11-29 20:00:00', "
            "'2026-11-29 20:00:00', 0)",
            ((e, n, l, t, r.replace(";", ","), s, d) for e, n, l, t, r, s, d in rows))
"""
ENQUEUE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
with conn:
    conn.execute("INSERT INTO deliveries (edition, subscriber_id, status, attempts, not_before, updated_at) "
                 "SELECT 'reference', id, 'pending', 0, '2026-11-29 20:30:00', '2026-11-29 20:30:00' "
                 "FROM subscribers WHERE status = 'active'")
    conn.execute("DELETE FROM deliveries WHERE edition = 'reference'")
"""
DRY_RUN = """
import hashlib, hmac, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    head, middle, tail = f.read().split(b"@@", 2)
key, size, count = b"k" * 32, 0, 0
for id_, email, name, locale, rubrics in conn.execute(
        "SELECT id, email, name, locale, rubrics FROM subscribers WHERE status = 'active' ORDER BY id"):
    token = hmac.new(key, id_.to_bytes(8, "big"), hashlib.sha256).hexdigest().encode()
    size += len(b"".join((head, email.encode(), middle, token, tail)))
    count += 1
print(count, size)
"""


@dataclass(frozen=True)
class Ran:
    seconds: float
    rss: float  # MiB
    output: str


def measure(command: list[str], check: tuple[int, ...] = (0,)) -> Ran:
    """A command run to its end: wall time, its own peak memory, its output. The peak is GNU time's
    (%M): a child forked from this script would count this script's memory, copied at the fork, as its own."""
    with tempfile.TemporaryFile("w+") as out, tempfile.NamedTemporaryFile("r") as peak:
        started = time.perf_counter()
        process = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", peak.name, *command], stdout=out,
                                 stderr=subprocess.STDOUT, text=True, cwd=HERE.root, env=HERE.env())
        elapsed = time.perf_counter() - started
        out.seek(0)
        output = out.read()
        rss = int(peak.read().split()[-1]) / 1024
    if process.returncode not in check or "Traceback" in output:
        sys.exit(f"{' '.join(command[:5])} … exited {process.returncode}:\n{output[-3000:]}")
    return Ran(elapsed, rss, output)


def digest(*args: str, check: tuple[int, ...] = (0,)) -> Ran:
    return measure([HERE.python, "-m", "digest", *args], check)


def python(script: str, *args: str) -> Ran:
    return measure([HERE.python, "-c", script, *args])


def write_list(path: Path, readers: int, asap: int) -> None:
    """The CSV import reads: the first `asap` readers active and due as soon as the edition is out."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["email", "name", "locale", "timezone", "rubrics", "status", "delivery_time"])
        for i in range(readers):
            locale, rubrics = VARIANTS[i % 20]
            status = "active" if i < asap or i % 100 >= 4 else ("bounced" if i % 100 == 0 else "unsubscribed")
            name = f"قارئ {i}" if locale == "ar" else f"Lecteur {i}"
            out.writerow([f"reader{i:07d}@example.com", name, locale, ZONES[(i // 20) % len(ZONES)],
                          rubrics.replace(",", ";"), status, "asap" if i < asap else ""])


@dataclass(frozen=True)
class Step:
    what: str
    ours: Ran
    reference: Ran
    reference_name: str


def dry_run_template(folder: Path, mean: float) -> Path:
    """The reference dry run's message: the mean size, with a place for the address and the token."""
    head, middle = b"To: ", b"\r\nList-Unsubscribe: <https://lequotidien.example.ma/unsubscribe/"
    tail = b">\r\n" + b"x" * max(0, round(mean) - 110)
    path = folder / "dry-run.eml"
    path.write_bytes(head + b"@@" + middle + b"@@" + tail)
    return path


def evening(folder: Path, readers: int, send: int, sink: SmtpSink) -> list[Step]:
    config = HERE.config(folder, smtp_table(sink.port, CONNECTIONS, send), 'local_time = "07:00"\n')
    database, reference_db, listing = str(folder / "digest.db"), str(folder / "reference.db"), folder / "readers.csv"
    write_list(listing, readers, send)
    edition = ("--date", DAY.isoformat(), "-c", str(config), "--now")
    steps = []
    HERE.make_store(reference_db)
    imported = digest("subscribers", "import", str(listing), "-c", str(config))
    steps.append(Step(f"import {readers:,} readers", imported, python(IMPORT, reference_db, str(listing)),
                      "csv + sqlite3 executemany"))
    print(f"  {imported.output.strip().splitlines()[0]}", flush=True)
    enqueued = digest("send", *edition, EVENING, "--enqueue-only")
    steps.append(Step("enqueue", enqueued, python(ENQUEUE, reference_db), "one INSERT … SELECT (sqlite3)"))
    print(f"  {enqueued.output.strip().splitlines()[-1]}", flush=True)
    dry = digest("send", *edition, SENDING, "--dry-run")
    kib = float(dry.output.split(" KiB each")[0].rsplit("(", 1)[1])
    steps.append(Step("dry run", dry, python(DRY_RUN, reference_db, str(dry_run_template(folder, kib * 1024))),
                      "sqlite3 + HMAC + join"))
    print(f"  dry run: {' '.join(dry.output.split())[:120]}", flush=True)
    sent = digest("send", *edition, SENDING)
    count = int(sent.output.split("  sent ", 1)[1].split()[0].replace(",", "")) if "  sent " in sent.output else 0
    if count != send:
        sys.exit(f"digest send sent {count:,}, not {send:,}:\n{sent.output}")
    made = messages_sent(config, database, limit=5000)  # the mean size of the messages sent, and the largest
    mean, largest = made.mean, made.largest
    message = folder / "reference.eml"
    message.write_bytes(sample(largest, round(mean)))
    source = measure(["smtp-source", "-d", "-s", str(CONNECTIONS), "-m", str(send), "-F", str(message), "-f",
                      "digest@lequotidien.example.ma", "-t", "reader@example.com", f"127.0.0.1:{sink.port}"])
    steps.append(Step(f"send the first {send:,} ({mean / 1024:.1f} KiB each)", sent, source,
                      f"smtp-source -d -s {CONNECTIONS}"))
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--send", type=int, default=100_000, help="readers due now, sent into smtp-sink")
    args = parser.parse_args()
    if not 0 < args.send <= args.readers:
        parser.error("--send must be between 1 and --readers")
    need_postfix()
    print(f"bench_evening: {args.readers:,} readers, the first {args.send:,} sent; load: {uptime()}", flush=True)
    sink = SmtpSink("-m", "1000", backlog=1024)
    try:
        with tempfile.TemporaryDirectory() as folder:
            steps = evening(Path(folder), args.readers, args.send, sink)
    finally:
        sink.stop()
    print(f"\n{args.readers:,} readers, SQLite, on {os.cpu_count()} cores; load at the end: {uptime()}\n")
    print("| step | digest | peak memory | reference | its time | its peak | digest ÷ reference (time) |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for step in steps:
        print(f"| {step.what} | {step.ours.seconds:.1f} s | {step.ours.rss:.0f} MiB | {step.reference_name} | "
              f"{step.reference.seconds:.1f} s | {step.reference.rss:.0f} MiB | {step.ours.seconds / step.reference.seconds:.2f} |")
    total = sum(step.ours.seconds for step in steps)
    print(f"| the evening | {total:.1f} s | {max(step.ours.rss for step in steps):.0f} MiB | | "
          f"{sum(step.reference.seconds for step in steps):.1f} s | | |")


if __name__ == "__main__":
    main()
