"""Every per-reader pass over the list costs the same per reader at 10,000 readers as at a million
(issue 14, point 3): each command run as a subprocess of the real CLI, its output to /dev/null.

    python tests/benchmarks/bench_passes.py --engine sqlite --sizes 10000,200000,1000000
    python tests/benchmarks/bench_passes.py --engine postgresql --sizes 10000,200000,1000000 --runs 3

The passes: `digest send --dry-run`, `digest send --enqueue-only`, `digest subscribers list` (a table),
`list --status active`, `list --status bounced` (a rare status: it must not walk the whole list),
`subscribers export`, `export --status active`, `subscribers count`. Each list is filled set-based,
straight into the schema (not through import): the 20 variants (3 locales × rubric choices) in turn,
six time zones, one reader in ten at an hour of their own, 86 % active, 8 % unsubscribed, 4 %
bounced, 2 % pending sign-ups, names in French and Arabic.

A command has a fixed cost whatever the list (starting Python, reading digest.toml, gathering and
rendering the edition's variants): it is measured on a list of --base readers (1,000) and taken off,
so that "µs per reader" is what one more reader costs: (t(N) − t(base)) / (N − base). The raw figure,
t(N) / N, is printed beside it. Timings are medians of --runs runs (one run at 500,000 readers and
more, where a run lasts long enough to be steady), the passes interleaved so that a machine getting
busier weighs on every pass alike. Peak memory is the command's own max RSS (GNU time).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# The tests' shared helpers (tests/support), and the checkout's packages, wherever this is run from.
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from reference import VARIANTS, Checkout, uptime  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from digest.core.database import database_url  # noqa: E402

from support.databases import fresh_postgres  # noqa: E402
from support.paths import DAY  # noqa: E402

HERE = Checkout.this()
ZONES = ("Africa/Casablanca", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Pacific/Auckland", "America/Los_Angeles")
# (name, arguments after the command's own -c/--database, does it change the database)
PASSES: list[tuple[str, tuple[str, ...]]] = [
    ("send --dry-run", ("send", "--date", DAY.isoformat(), "--dry-run")),
    ("send --enqueue-only", ("send", "--date", DAY.isoformat(), "--enqueue-only")),
    ("subscribers list", ("subscribers", "list")),
    ("subscribers list --status active", ("subscribers", "list", "--status", "active")),
    ("subscribers list --status bounced", ("subscribers", "list", "--status", "bounced")),
    ("subscribers list --format json", ("subscribers", "list", "--format", "json")),
    ("subscribers export", ("subscribers", "export")),
    ("subscribers export --status active", ("subscribers", "export", "--status", "active")),
    ("subscribers count", ("subscribers", "count")),
]


def fill(database: str, count: int) -> None:
    """`count` readers made by the database in one INSERT … SELECT (a million in seconds): see the
    module's docstring for the mix. The schema must exist (Checkout.make_store)."""
    engine = create_engine(database_url(database))
    postgres = engine.dialect.name == "postgresql"
    variants = " UNION ALL ".join(f"SELECT {i} AS k, '{loc}' AS locale, '{rub}' AS rubrics"
                                  for i, (loc, rub) in enumerate(VARIANTS))
    places = " UNION ALL ".join(f"SELECT {i} AS k, '{zone}' AS zone" for i, zone in enumerate(ZONES))
    if postgres:
        numbers = f"SELECT g AS i FROM generate_series(0, {count - 1}) AS g"
        address, number = "'reader' || lpad(n.i::text, 7, '0') || '@example.com'", "n.i::text"
        moment = "TIMESTAMPTZ '2026-11-01 00:00:00+00'"
    else:
        numbers = f"SELECT i FROM (WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {count - 1}) SELECT i FROM c)"
        address, number = "printf('reader%07d@example.com', n.i)", "n.i"
        moment = "'2026-11-01 00:00:00.000000'"
    status = ("CASE WHEN (n.i * 37) % 100 < 86 THEN 'active' WHEN (n.i * 37) % 100 < 94 THEN 'unsubscribed' "
              "WHEN (n.i * 37) % 100 < 98 THEN 'bounced' ELSE 'pending' END")
    hour = "CASE WHEN n.i % 10 = 3 THEN '06:30' WHEN n.i % 20 = 7 THEN 'asap' END"
    name = f"CASE WHEN v.locale = 'ar' THEN 'قارئ ' || {number} ELSE 'Lecteur ' || {number} END"
    statement = text(
        "INSERT INTO subscribers (email, name, locale, timezone, rubrics, status, created_at, updated_at, delivery_time, "
        "bounce_score) "
        f"SELECT {address}, {name}, v.locale, z.zone, v.rubrics, {status}, {moment}, {moment}, {hour}, 0 "
        f"FROM ({numbers}) AS n JOIN ({variants}) AS v ON v.k = n.i % 20 "
        f"JOIN ({places}) AS z ON z.k = (n.i / 20) % {len(ZONES)}")
    with engine.begin() as conn:
        conn.execute(statement)
    if postgres:  # a list grown over months has been vacuumed and sampled by autovacuum long ago
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE subscribers"))
    engine.dispose()


def unqueue(database: str) -> None:
    """The queue emptied: the next `send --enqueue-only` freezes and enqueues the edition afresh."""
    engine = create_engine(database_url(database))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE deliveries, edition_variants, editions"))
        else:
            for table in ("deliveries", "edition_variants", "editions"):
                conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


@dataclass(frozen=True)
class Ran:
    seconds: float  # wall
    cpu: float  # the command's own user + system time
    rss: float  # MiB


def run(config: Path, database: str, args: tuple[str, ...]) -> Ran:
    """`digest ARGS -c CONFIG --database DATABASE`, its standard output to /dev/null: wall time, CPU
    time and peak memory, the command's own: GNU time runs it (a child forked from this script would
    count this script's memory, copied at the fork, as its own peak)."""
    with tempfile.TemporaryFile("w+") as errors, tempfile.NamedTemporaryFile("r") as figures:
        command = ["/usr/bin/time", "-f", "%U %S %M", "-o", figures.name, HERE.python, "-m", "digest", *args,
                   "-c", str(config), "--database", database]
        started = time.perf_counter()
        process = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=errors, cwd=HERE.root, env=HERE.env())
        elapsed = time.perf_counter() - started
        errors.seek(0)
        said = errors.read()
        figures.seek(0)
        user, system, peak = figures.read().split()[-3:]
    if process.returncode not in (0, 1) or "Traceback" in said:
        sys.exit(f"digest {' '.join(args)} failed ({process.returncode}):\n{said}")
    return Ran(elapsed, float(user) + float(system), int(peak) / 1024)


@dataclass
class Measured:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)

    def median(self, name: str, cpu: bool = False) -> float:
        return statistics.median((self.cpu if cpu else self.seconds)[name])


@contextmanager
def database(engine: str, folder: Path, size: int) -> Iterator[str]:
    if engine == "sqlite":
        yield str(folder / f"list-{size}.db")
    else:
        with fresh_postgres() as url:
            yield url


def measure(engine: str, folder: Path, config: Path, size: int, runs: int, passes: list[tuple[str, tuple[str, ...]]]) -> Measured:
    """Every pass over a list of `size` readers, `runs` times, interleaved."""
    out = Measured()
    with database(engine, folder, size) as where:
        t0 = time.perf_counter()
        HERE.make_store(where)
        fill(where, size)
        print(f"  {size:>9,} readers filled in {time.perf_counter() - t0:.1f} s", flush=True)
        for _ in range(runs):
            for name, args in passes:
                ran = run(config, where, args)
                if "--enqueue-only" in args:
                    unqueue(where)
                out.seconds.setdefault(name, []).append(ran.seconds)
                out.cpu.setdefault(name, []).append(ran.cpu)
                out.rss[name] = max(out.rss.get(name, 0.0), ran.rss)
        for name, _ in passes:
            print(f"    {name:<36} {out.median(name):8.2f} s wall {out.median(name, cpu=True):8.2f} s CPU "
                  f"{out.rss[name]:6.0f} MiB  (wall: {', '.join(f'{t:.2f}' for t in out.seconds[name])}; "
                  f"CPU: {', '.join(f'{t:.2f}' for t in out.cpu[name])})", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--sizes", default="10000,200000,1000000", help="list sizes, comma-separated")
    parser.add_argument("--base", type=int, default=1000, help="the list whose time is the commands' fixed cost")
    parser.add_argument("--runs", type=int, default=3, help="runs per pass below 500,000 readers (medians)")
    parser.add_argument("--big-runs", type=int, default=1, help="runs per pass at 500,000 readers and more")
    parser.add_argument("--only", default="", help="passes whose name contains this (e.g. 'list'), comma-separated")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    wanted = [w for w in args.only.split(",") if w]
    passes = [p for p in PASSES if not wanted or any(w in p[0] for w in wanted)]
    print(f"bench_passes on {args.engine}: sizes {', '.join(f'{s:,}' for s in sizes)}, fixed cost from {args.base:,} "
          f"readers; load: {uptime()}", flush=True)
    results: dict[int, Measured] = {}
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        config = HERE.config(folder)
        for size in [args.base, *sizes]:
            runs = max(args.runs, 5) if size == args.base else args.runs if size < 500_000 else args.big_runs
            results[size] = measure(args.engine, folder, config, size, runs, passes)
    table(args.engine, passes, sizes, args.base, results)


def table(engine: str, passes: list[tuple[str, tuple[str, ...]]], sizes: list[int], base_size: int,
          results: dict[int, Measured]) -> None:
    """µs per reader beyond the fixed cost, by the command's own CPU time and by the wall clock, at
    each size; their ratio last/first; peak memory."""
    base, first, last = results[base_size], sizes[0], sizes[-1]

    def per(size: int, name: str, cpu: bool) -> float:
        return (results[size].median(name, cpu) - base.median(name, cpu)) / (size - base_size) * 1e6

    print(f"\nµs per reader, the fixed cost taken off: (t(N) − t({base_size:,})) / (N − {base_size:,}), by the "
          f"command's CPU time and [by the wall clock]; {engine}; load at the end: {uptime()}\n")
    head = " | ".join(f"{s:,}" for s in sizes)
    print(f"| pass ({engine}) | fixed cost CPU [wall] | {head} | ratio {last:,}/{first:,} CPU [wall] | peak RSS |")
    print("|---|---:|" + "---:|" * len(sizes) + "---:|---:|")
    for name, _ in passes:
        cells = " | ".join(f"{per(s, name, True):.1f} [{per(s, name, False):.1f}]" for s in sizes)
        ratios = [per(last, name, cpu) / per(first, name, cpu) if per(first, name, cpu) > 0 else float("nan")
                  for cpu in (True, False)]
        memory = " / ".join(f"{results[s].rss[name]:.0f}" for s in sizes)
        print(f"| `{name}` | {base.median(name, True):.2f} s [{base.median(name):.2f} s] | {cells} | "
              f"{ratios[0]:.2f} [{ratios[1]:.2f}] | {memory} MiB |")


if __name__ == "__main__":
    main()
