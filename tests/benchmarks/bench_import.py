"""Benchmark: `digest subscribers import` of a large CSV against plain csv + executemany, in the same run.

Run on purpose (pytest does not collect it):

    python tests/benchmarks/bench_import.py [--rows 200000,1000000] [--engine sqlite|postgresql]

For each size a CSV is generated (seeded): addresses on a realistic mix of domains (gmail, yahoo,
hotmail, orange.fr, … for most rows, then a long tail of 20,000 company domains), names in French and
Arabic, locales, time zones, rubrics, delivery times, and one bad row in 500 (broken addresses,
unknown locales, duplicates). Into a fresh database each time:

- digest: `python -m digest subscribers import FILE --database DB`, a subprocess;
- reference: a subprocess reading the same file with Python's csv module and writing the same rows
  with executemany (sqlite3, or psycopg for PostgreSQL) into the same schema, made by digest first:
  one subscribers row and one consent_events row per good row, pages of 5,000, one transaction. It
  validates nothing and merges nothing (the database is empty): the floor for the same writes.

Each process's peak RSS comes from os.wait4 (the kernel's ru_maxrss of that child alone). Printed:
seconds, rows per second, peak MiB, and digest / reference ratios.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The tests' shared helpers (tests/support), and the checkout's packages, wherever this is run from.
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from support.cli import environment  # noqa: E402
from support.databases import fresh_postgres  # noqa: E402

BAD_EVERY = 500
# Shares of the big providers in a French-speaking list; the rest goes to the long tail.
BIG = [("gmail.com", 30), ("yahoo.fr", 8), ("yahoo.com", 5), ("hotmail.com", 8), ("hotmail.fr", 5),
       ("outlook.com", 4), ("orange.fr", 7), ("wanadoo.fr", 3), ("free.fr", 4), ("laposte.net", 2),
       ("sfr.fr", 2), ("icloud.com", 2), ("menara.ma", 3), ("gmx.fr", 1), ("live.fr", 1)]
TAIL = 20_000
FIRST = ["amine", "salma", "youssef", "fatima", "omar", "hélène", "jean", "marie", "karim", "nadia", "lucas", "léa"]
LAST = ["alaoui", "bennani", "dupont", "martin", "el amrani", "durand", "tazi", "bernard", "idrissi", "moreau"]
ARABIC = ["أمين العلوي", "سلمى بناني", "يوسف التازي"]
ZONES = ["Africa/Casablanca", "Europe/Paris", "UTC", "America/Montreal", ""]
LOCALES = ["fr", "fr", "en", "ar", ""]
RUBRICS = ["", "", "actualite"]
HOURS = ["", "", "07:30", "asap", "18:00"]
BAD = ["not-an-address", "omar@@example.ma", "salma@gmail", "x@exa mple.com", "trop.de.points..@gmail.com"]

REFERENCE = r'''
import csv, json, sys
from datetime import datetime, timezone
path, engine, url = sys.argv[1:4]
if engine == "sqlite":
    import sqlite3
    conn = sqlite3.connect(url)
    conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA synchronous=NORMAL")
    mark = "?"
else:
    import psycopg
    conn = psycopg.connect(url)
    mark = "%s"
sub = ("INSERT INTO subscribers (email, name, locale, timezone, rubrics, status, created_at, updated_at,"
       " delivery_time, bounce_score) VALUES (" + ", ".join([mark] * 10) + ")")
ev = "INSERT INTO consent_events (email, at, event, channel, source, detail) VALUES (" + ", ".join([mark] * 6) + ")"
now = datetime.now(timezone.utc)
stamp = now if engine != "sqlite" else now.strftime("%Y-%m-%d %H:%M:%S.%f")
seen = set()
rows, events = [], []
cur = conn.cursor()
with open(path, newline="", encoding="utf-8") as f:
    reader = csv.reader(f)
    next(reader)
    for email, name, locale, tz, rubrics, hour in reader:
        email = email.strip().lower()
        if email in seen:
            continue
        seen.add(email)
        rows.append((email, name, locale or "fr", tz or "UTC", rubrics, "active", stamp, stamp, hour or None, 0.0))
        events.append((email, stamp, "imported", "import", "reference", json.dumps({"locale": locale or "fr"})))
        if len(rows) == 5000:
            cur.executemany(sub, rows); cur.executemany(ev, events); rows, events = [], []
cur.executemany(sub, rows) if rows else None
cur.executemany(ev, events) if events else None
conn.commit()
'''


def domains(rng: random.Random) -> list[str]:
    """A weighted list to draw from: the big providers by share, then the tail (each domain rarely)."""
    big = [d for d, share in BIG for _ in range(share)]
    tail = [f"{rng.choice(['societe', 'cabinet', 'studio', 'groupe', 'atelier'])}{i}.{rng.choice(['ma', 'fr', 'com', 'net'])}"
            for i in range(TAIL)]
    return big * (len(tail) // 100 * 3 // 2) + tail  # about 60 % of rows on the big ones


def write_csv(path: Path, rows: int, seed: int = 14) -> int:
    """The file; returns how many of its rows are bad."""
    rng = random.Random(seed)
    pool = domains(rng)
    bad = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("email,name,locale,timezone,rubrics,delivery_time\n")
        for i in range(rows):
            if i % BAD_EVERY == BAD_EVERY - 1:
                bad += 1
                if i % (BAD_EVERY * 5) == BAD_EVERY - 1 and i > BAD_EVERY:
                    f.write(f"reader{i - BAD_EVERY + 1}.x@gmail.com,Doublon,fr,,,\n")  # a duplicate of an earlier row
                elif i % (BAD_EVERY * 3) == BAD_EVERY - 1:
                    f.write(f"reader{i}@gmail.com,X,klingon,,,\n")
                else:
                    f.write(f"{rng.choice(BAD)},X,,,,\n")
                continue
            first, last = rng.choice(FIRST), rng.choice(LAST)
            name = rng.choice(ARABIC) if rng.random() < 0.1 else f"{first.title()} {last.title()}"
            local = f"{first}.{last}{i}".replace(" ", "").encode("ascii", "ignore").decode()  # ASCII addresses
            domain = rng.choice(pool)
            if i % (BAD_EVERY * 5) == 0:
                local, domain = f"reader{i}.x", "gmail.com"  # duplicated further down
            f.write(f"{local}@{domain},{name},{rng.choice(LOCALES)},{rng.choice(ZONES)},"
                    f"{rng.choice(RUBRICS)},{rng.choice(HOURS)}\n")
    return bad


def measured(args: list[str], cwd: Path) -> tuple[float, float, float, subprocess.CompletedProcess]:
    """Wall seconds, CPU seconds (user + system) and peak MiB of one subprocess (its own rusage, from
    wait4): on a shared machine the CPU time is the steadier of the two."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=environment(), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return seconds, cpu, usage.ru_maxrss / 1024, subprocess.CompletedProcess(args, code, out.read(), err.read())


def one_size(rows: int, engine: str, folder: Path) -> None:
    from subscribers.store import Store

    path = folder / f"readers-{rows}.csv"
    bad = write_csv(path, rows)
    size = path.stat().st_size / 2**20
    results = {}
    for who in ("reference", "digest"):
        with database(engine, folder / f"{who}-{rows}.db") as (url, raw):
            Store.open(url).close()  # the schema, made by digest's migrations
            if who == "digest":
                seconds, cpu, mib, done = measured(["-m", "digest", "subscribers", "import", str(path), "--database", url], folder)
                if done.returncode not in (0, 1) or "Traceback" in done.stderr:
                    sys.exit(f"digest failed ({done.returncode}):\n{done.stderr[-3000:]}")
                summary = done.stdout.splitlines()[0]
            else:
                seconds, cpu, mib, done = measured(["-c", REFERENCE, str(path), engine, raw], folder)
                if done.returncode != 0:
                    sys.exit(f"reference failed:\n{done.stderr[-3000:]}")
                summary = "plain csv + executemany"
        results[who] = (seconds, cpu, mib)
        print(f"  {who:9} {seconds:7.1f} s  cpu {cpu:7.1f} s  {rows / seconds:9,.0f} rows/s  peak {mib:6.0f} MiB   "
              f"{summary}", flush=True)
    (ds, dc, dm), (rs, rc, rm) = results["digest"], results["reference"]
    print(f"  {rows:,} rows ({size:.0f} MiB, {bad:,} bad): digest/reference time ×{ds / rs:.2f}, cpu ×{dc / rc:.2f}, "
          f"memory ×{dm / rm:.2f}; load {os.getloadavg()[0]:.2f}", flush=True)


class database:
    """A fresh database: (SQLAlchemy URL, the driver's own URL or path)."""

    def __init__(self, engine: str, path: Path) -> None:
        self.engine, self.path = engine, path
        self._pg = fresh_postgres() if engine == "postgresql" else None

    def __enter__(self) -> tuple[str, str]:
        if self._pg is None:
            return str(self.path), str(self.path)
        url = self._pg.__enter__()
        return url, url.replace("postgresql+psycopg://", "postgresql://", 1)

    def __exit__(self, *exc: object) -> None:
        if self._pg is not None:
            self._pg.__exit__(*exc)
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="200000,1000000", help="sizes, comma-separated (default 200000,1000000)")
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    print(f"bench_import: {args.engine}, Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        for rows in (int(n) for n in args.rows.split(",")):
            print(f"{rows:,} rows:", flush=True)
            one_size(rows, args.engine, Path(tmp))


if __name__ == "__main__":
    main()
