"""The delivery queue's benchmarks (issue 10, point 7), each against a reference measured in the same run.

Run on purpose (pytest does not collect it):

    python tests/benchmarks/bench_queue.py workers    (a) 1, 2 and 4 `digest worker` processes on PostgreSQL
                                                          sending one enqueued edition into one smtp-sink, against
                                                          smtp-source sending as many messages of the same mean
                                                          size into the same sink
    python tests/benchmarks/bench_queue.py enqueue    (b) `digest send --enqueue-only` of 1,000,000 readers on
                                                          PostgreSQL against 100,000: time and peak memory
    python tests/benchmarks/bench_queue.py claims     (c) a claim of one batch with 10,000 and with 1,000,000 rows
                                                          pending, and the plan of its leasing statement
    python tests/benchmarks/bench_queue.py sqlite     (d) `digest send` of 20,000 readers on SQLite into smtp-sink,
                                                          against the same with the code before the queue
    python tests/benchmarks/bench_queue.py all

Every PostgreSQL figure is taken in a database of its own, made for it and dropped afterwards, on the
server of $DIGEST_TEST_POSTGRES (the tests' one). (d) needs the code before the queue checked out
beside this one, with its own venv:

    git worktree add ../wt-before 3b800e5 && cd ../wt-before && python3 -m venv .venv && .venv/bin/pip install -e '.[test]'

Timings are medians of --runs runs (default 3), the runs of each kind interleaved so that a machine
getting busier weighs on both sides of a ratio; the load (`uptime`) is printed with each. At the end,
the figures as a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The tests' shared helpers (tests/support), and the checkout's packages, wherever this is run from.
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from reference import (  # noqa: E402
    Checkout,
    fill,
    median,
    need_postfix,
    sent,
    smtp_source,
    smtp_table,
    uptime,
)
from sqlalchemy import Engine, create_engine, event, func, select, text, tuple_, update  # noqa: E402

from digest.delivery.queue import Queue  # noqa: E402
from digest.delivery.schema import deliveries  # noqa: E402
from digest.delivery.worker import BATCH_PER_CONNECTION  # noqa: E402
from subscribers.store import Store  # noqa: E402

from support.databases import fresh_postgres  # noqa: E402
from support.paths import DAY  # noqa: E402
from support.ports import PATIENCE  # noqa: E402
from support.smtp import SmtpSink  # noqa: E402

HERE = Checkout.this()
BEFORE = Path(__file__).resolve().parents[3] / "wt-before"  # the default for --before
# The zones of issue 10's test of readers at their hour: an enqueue makes one INSERT per zone.
ZONES = ("Pacific/Auckland", "Asia/Tokyo", "Africa/Casablanca", "Europe/Paris", "America/New_York", "America/Los_Angeles")
SETTLED = ("sent", "failed", "bounced")
UNSETTLED = ("pending", "deferred", "leased")


@dataclass(frozen=True)
class Row:
    """One line of the final table: what was measured, its figure, the reference's, their ratio."""

    what: str
    ours: str
    reference: str
    ratio: str


def enqueue(config: Path, database: str, readers: int, zones: tuple[str, ...] = ("Africa/Casablanca",)) -> None:
    """A database holding `readers` readers and the day's edition enqueued for them, as the cron job
    before the workers leaves it."""
    HERE.make_store(database)
    fill(database, readers, zones)
    result = HERE.digest("send", "-c", str(config), "--date", DAY.isoformat(), "--database", database, "--enqueue-only")
    if result.returncode != 0:
        sys.exit(f"digest send --enqueue-only failed:\n{result.stdout}{result.stderr}")


@contextmanager
def engine_of(url: str, **options: int) -> Iterator[Engine]:
    engine = create_engine(url, **options)
    try:
        yield engine
    finally:
        engine.dispose()


# -- (a) workers ------------------------------------------------------------------------------------
def work(config: Path, url: str, workers: int, readers: int) -> tuple[float, float, float]:
    """Seconds from starting `workers` `digest worker` processes until every row is settled, seconds
    from the first message recorded sent to the last (the workers' start-up left out), and the CPU
    seconds (user + system) the workers took, start-up included."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    with engine_of(url) as engine:
        started = time.perf_counter()
        running = [HERE.popen("worker", "-c", str(config), "--database", url) for _ in range(workers)]
        try:
            deadline = time.monotonic() + 20 * PATIENCE
            while True:
                # A look through the due and leased rows' indexes, not a count of the settled ones: a
                # count walks every row 20 times a second, on the cores the workers share.
                with engine.connect() as conn:
                    unsettled = conn.execute(select(deliveries.c.subscriber_id)
                                             .where(deliveries.c.status.in_(UNSETTLED)).limit(1)).first()
                if unsettled is None:
                    break
                if any(w.poll() is not None for w in running) or time.monotonic() > deadline:
                    with engine.connect() as conn:
                        settled = conn.execute(select(func.count()).select_from(deliveries)
                                               .where(deliveries.c.status.in_(SETTLED))).scalar_one()
                    sys.exit(f"the workers stopped with {settled:,} of {readers:,} settled")
                time.sleep(0.05)  # a poll, not a pace: the figure's resolution (a run takes seconds)
            wall = time.perf_counter() - started
        finally:
            for w in running:
                w.send_signal(signal.SIGTERM)
            errors = [w.communicate(timeout=PATIENCE)[1] for w in running]
        if any(w.returncode != 0 for w in running):
            sys.exit("a worker failed:\n" + "\n".join(errors))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers: the only children reaped since
        cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        with engine.connect() as conn:
            first, last, count = conn.execute(select(func.min(deliveries.c.updated_at), func.max(deliveries.c.updated_at),
                                                     func.count()).where(deliveries.c.status == "sent")).one()
        if count != readers:
            sys.exit(f"{readers - count:,} rows were not sent (deferred or failed)")
    return wall, (last - first).total_seconds(), cpu


def bench_workers(readers: int, runs: int, connections: int, counts: tuple[int, ...] = (1, 2, 4)) -> list[Row]:
    need_postfix()
    walls: dict[int, list[float]] = {n: [] for n in counts}
    steadies: dict[int, list[float]] = {n: [] for n in counts}
    cpus: dict[int, list[float]] = {n: [] for n in counts}
    references: list[float] = []
    sizes: list[float] = []
    loads = [uptime()]
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            sink = SmtpSink("-m", "1000", backlog=1024)
            try:
                config = HERE.config(folder, smtp_table(sink.port, connections, readers))
                for n in counts:
                    with fresh_postgres() as url:
                        enqueue(config, url, readers)
                        wall, steady, cpu = work(config, url, n, readers)
                        walls[n].append(wall)
                        steadies[n].append(steady)
                        cpus[n].append(cpu)
                        if n == counts[0]:  # the reference between the worker runs, at the size they sent
                            got = sent(config, url)
                            sizes.append(got.mean)
                            references.append(smtp_source(sink.port, readers, got.largest, round(got.mean), connections,
                                                          folder))
            finally:
                sink.stop()
        loads.append(uptime())
    reference = readers / median(references)
    size = median(sizes)
    print(f"(a) {readers:,} readers (20 variants, mean {size / 1024:.1f} KiB) enqueued on PostgreSQL, sent by `digest worker` "
          f"processes sharing {connections} connections, into one smtp-sink; {runs} runs, medians")
    print(f"    smtp-source -d -s {connections}, {readers:,} messages of {size:,.0f} B: {reference:,.0f} msg/s "
          f"(runs: {_each(readers, references)})")
    rows = [Row(f"smtp-source, {readers:,} messages of {size / 1024:.1f} KiB, {connections} connections",
                f"{reference:,.0f} msg/s", "", "1")]
    for n in counts:
        ours, steady = readers / median(walls[n]), readers / median(steadies[n])
        print(f"    {n} worker{'s' if n > 1 else ' '}: {ours:,.0f} msg/s from start to the last message "
              f"(runs: {_each(readers, walls[n])}), {steady:,.0f} msg/s from the first message to the last; "
              f"ratio to smtp-source {ours / reference:.2f} ({steady / reference:.2f}); "
              f"CPU {median(cpus[n]) / readers * 1e6:.0f} µs a message (runs: {', '.join(f'{c:.1f}' for c in cpus[n])} s)")
        rows.append(Row(f"{n} × `digest worker` on PostgreSQL (start to finish; first to last message)",
                        f"{ours:,.0f} msg/s ({steady:,.0f})", f"{reference:,.0f} msg/s",
                        f"{ours / reference:.2f} ({steady / reference:.2f}); CPU {median(cpus[n]) / readers * 1e6:.0f} µs a message"))
    _loads(loads)
    return rows


# -- (b) enqueue ------------------------------------------------------------------------------------
def bench_enqueue(runs: int, sizes: tuple[int, ...] = (100_000, 1_000_000)) -> list[Row]:
    first: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}  # (seconds, MiB)
    again: dict[int, list[float]] = {n: [] for n in sizes}
    loads = [uptime()]
    for _ in range(runs):
        for count in sizes:
            with tempfile.TemporaryDirectory() as folder, fresh_postgres() as url:
                config = HERE.config(Path(folder), delivery='local_time = "07:00"')
                HERE.make_store(url)
                fill(url, count, ZONES)
                args = ("send", "-c", str(config), "--date", DAY.isoformat(), "--database", url, "--enqueue-only")
                ran = HERE.measure(*args)
                if ran.code != 0 or f"{count:,} readers added" not in ran.output:
                    sys.exit(f"the enqueue of {count:,} readers failed:\n{ran.output}")
                first[count].append((ran.seconds, ran.rss))
                again[count].append(HERE.measure(*args).seconds)  # cron's next run: nothing to add
        loads.append(uptime())
    small, large = sizes[0], sizes[-1]
    print(f"(b) `digest send --enqueue-only` on PostgreSQL (readers in {len(ZONES)} zones, each at their 07:00; "
          f"20 variants rendered and frozen; the whole command); {runs} runs, medians")
    rows = []
    for count in sizes:
        seconds, rss = median(s for s, _ in first[count]), median(m for _, m in first[count])
        print(f"    {count:>9,} readers: {seconds:5.1f} s ({seconds / count * 1e6:5.1f} µs a reader), peak {rss:5.1f} MiB; "
              f"again, nothing to add: {median(again[count]):4.1f} s  "
              f"(runs: {', '.join(f'{s:.1f} s {m:.0f} MiB' for s, m in first[count])})")
    t_small, t_large = median(s for s, _ in first[small]), median(s for s, _ in first[large])
    m_small, m_large = median(m for _, m in first[small]), median(m for _, m in first[large])
    per_reader = (t_large - t_small) / (large - small) * 1e6
    print(f"    {large // small}× the readers: {t_large / t_small:.1f}× the time ({per_reader:.1f} µs a reader more), "
          f"{m_large / m_small:.2f}× the memory")
    rows.append(Row(f"enqueue {large:,} readers (against {small:,})", f"{t_large:.1f} s, {m_large:.0f} MiB",
                    f"{t_small:.1f} s, {m_small:.0f} MiB", f"{t_large / t_small:.1f}× time, {m_large / m_small:.2f}× memory"))
    rows.append(Row(f"enqueue again, nothing to add, {large:,} readers", f"{median(again[large]):.1f} s",
                    f"{median(again[small]):.1f} s", f"{median(again[large]) / median(again[small]):.1f}×"))
    _loads(loads)
    return rows


# -- (c) claims -------------------------------------------------------------------------------------
def bench_claims(claims: int, connections: int, sizes: tuple[int, ...] = (10_000, 1_000_000)) -> list[Row]:
    batch = connections * BATCH_PER_CONNECTION  # what one worker holding every connection claims at a time
    medians: dict[int, float] = {}
    server: dict[int, str] = {}
    loads = [uptime()]
    for count in sizes:
        with tempfile.TemporaryDirectory() as folder, fresh_postgres() as url:
            config = HERE.config(Path(folder))
            enqueue(config, url, count)
            # One connection: the plans psycopg prepared are that session's, to be looked at afterwards.
            with engine_of(url, pool_size=1, max_overflow=0) as engine:
                leases = capture_leases(engine)
                statements = StatementClock(engine)
                store = Store(engine)
                queue = Queue(store)
                times = []
                for _ in range(claims):
                    t0 = time.perf_counter()
                    with statements.on():
                        rows = queue.claim(batch)
                    times.append(time.perf_counter() - t0)
                    assert len(rows) == batch
                    with engine.begin() as conn:  # sent, as the worker would record them (not timed)
                        conn.execute(update(deliveries)
                                     .where(tuple_(deliveries.c.edition, deliveries.c.subscriber_id)
                                            .in_([(r.edition, r.subscriber_id) for r in rows]))
                                     .values(status="sent", lease_owner=None, lease_expires=None))
                medians[count] = median(times)
                plan = explain(engine, leases[-1])
                with engine.connect() as conn:
                    prepared = conn.execute(text(
                        "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                        "WHERE statement LIKE :locked AND statement LIKE :due"),
                        {"locked": "%SKIP LOCKED%", "due": "%not_before <=%"}).all()
            server[count] = plan[-1].strip()
            print(f"(c) claim of {batch} rows with {count:,} pending: median {medians[count] * 1000:.1f} ms of {claims} "
                  f"({medians[count] / batch * 1e6:.0f} µs a row; runs from {min(times) * 1000:.1f} to "
                  f"{max(times) * 1000:.1f} ms); the leasing statement, as prepared by psycopg: "
                  f"{', '.join(f'{g} generic and {c} custom plans' for g, c in prepared) or 'not prepared'}")
            print("    where a claim's time goes (client and server, ms a claim): "
                  + "; ".join(f"{seconds / claims * 1000:.1f} {what}" for what, seconds in statements.spent.most_common()))
            print(f"    EXPLAIN (ANALYZE, BUFFERS) of its leasing statement (… FOR UPDATE SKIP LOCKED), {count:,} pending:")
            print("\n".join(f"      {line}" for line in plan))
            if "ix_deliveries_due" not in "\n".join(plan):
                print("    !! the due rows' index (ix_deliveries_due) is not used")
        loads.append(uptime())
    small, large = sizes[0], sizes[-1]
    print(f"    {large // small}× the rows pending: {medians[large] / medians[small]:.2f}× the claim's time")
    _loads(loads)
    return [Row(f"claim {batch} rows, {large:,} pending (against {small:,}); server time of the leasing statement",
                f"{medians[large] * 1000:.1f} ms; {server[large].split(': ')[1]}",
                f"{medians[small] * 1000:.1f} ms; {server[small].split(': ')[1]}",
                f"{medians[large] / medians[small]:.2f}")]


class StatementClock:
    """Seconds spent in each kind of statement (its first words) while on(): where a claim's time goes."""

    def __init__(self, engine: Engine) -> None:
        self.spent: Counter[str] = Counter()
        self.running = False
        event.listen(engine, "before_cursor_execute", self._start)
        event.listen(engine, "after_cursor_execute", self._stop)

    @contextmanager
    def on(self) -> Iterator[None]:
        self.running = True
        try:
            yield
        finally:
            self.running = False

    def _start(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        context.bench_started = time.perf_counter()

    def _stop(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if self.running:
            self.spent[_kind(statement)] += time.perf_counter() - context.bench_started


def _kind(statement: str) -> str:
    words = " ".join(statement.split())
    if "SKIP LOCKED" in words:
        return "lease (expired)" if "lease_expires <" in words else "lease (due)"
    if words.startswith("SELECT DISTINCT deliveries.edition"):
        return "stale (a newer edition due)"
    if "JOIN subscribers" in words:
        return "readers of the rows"
    if "SET status=%(status)s::VARCHAR, updated_at" in words:
        return "supersede older"
    if "lease_owner FROM" in words:
        return "dead owners"
    return words[:40]


def capture_leases(engine: Engine) -> list[tuple[str, object]]:
    """The leasing statements of due rows as psycopg receives them (SQL and parameters), as they run."""
    seen: list[tuple[str, object]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def keep(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if "SKIP LOCKED" in statement and "not_before <=" in statement:
            seen.append((statement, parameters))

    return seen


def explain(engine: Engine, statement: tuple[str, object]) -> list[str]:
    """EXPLAIN ANALYZE of a statement that changes rows, in a transaction rolled back."""
    sql, parameters = statement
    with engine.connect() as conn:
        plan = [row[0] for row in conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", parameters)]
        conn.rollback()
    return plan


# -- (d) SQLite, before and after the queue ---------------------------------------------------------
def bench_sqlite(readers: int, runs: int, connections: int, before: Path) -> list[Row]:
    need_postfix()
    trees = {"now": HERE, "before": Checkout.at(before)}
    whole: dict[str, list[float]] = {name: [] for name in trees}  # the command, wall time
    inner: dict[str, list[float]] = {name: [] for name in trees}  # the send, as its summary's 'elapsed' says
    cpu: dict[str, list[float]] = {name: [] for name in trees}  # the command, CPU time
    loads = [uptime()]
    for run in range(runs):
        order = list(trees) if run % 2 == 0 else list(reversed(trees))
        sink = SmtpSink("-m", "1000", backlog=1024)
        try:
            for name in order:
                tree = trees[name]
                with tempfile.TemporaryDirectory() as folder:
                    folder = Path(folder)
                    config = tree.config(folder, smtp_table(sink.port, connections, readers))
                    database = str(folder / "digest.db")
                    tree.make_store(database)
                    fill(database, readers)
                    ran = tree.measure("send", "-c", str(config), "--date", DAY.isoformat())
                    lines = {line.split()[0]: line.split() for line in ran.output.splitlines() if line.strip()}
                    if ran.code != 0 or lines.get("sent", ["", ""])[1] != f"{readers:,}":
                        sys.exit(f"digest send ({name}) failed:\n{ran.output}")
                    whole[name].append(ran.seconds)
                    inner[name].append(float(lines["elapsed"][1]))
                    cpu[name].append(ran.cpu)
        finally:
            sink.stop()
        loads.append(uptime())
    now, was = median(whole["now"]), median(whole["before"])
    now_in, was_in = median(inner["now"]), median(inner["before"])
    now_cpu, was_cpu = median(cpu["now"]), median(cpu["before"])
    print(f"(d) `digest send` of {readers:,} readers on SQLite into one smtp-sink, {connections} connections; {runs} runs, "
          "medians, the two checkouts in turn")
    for name, tree in trees.items():
        print(f"    {name:<6} ({tree.root}): whole command {median(whole[name]):5.1f} s = {readers / median(whole[name]):,.0f} "
              f"msg/s; its own 'elapsed' {median(inner[name]):5.2f} s = {readers / median(inner[name]):,.0f} msg/s; "
              f"CPU {median(cpu[name]):5.1f} s ({median(cpu[name]) / readers * 1e6:.0f} µs a message)  "
              f"(runs: {', '.join(f'{t:.1f}' for t in whole[name])} s; CPU {', '.join(f'{t:.1f}' for t in cpu[name])} s)")
    print(f"    now / before: {now / was:.2f} the time of the whole command, {now_in / was_in:.2f} that of the send, "
          f"{now_cpu / was_cpu:.2f} the CPU time (the issue asks within 10 %)")
    _loads(loads)
    return [Row(f"`digest send`, SQLite, {readers:,} readers (whole command; its 'elapsed'; CPU a message)",
                f"{readers / now:,.0f} msg/s ({readers / now_in:,.0f}; {now_cpu / readers * 1e6:.0f} µs)",
                f"{readers / was:,.0f} msg/s ({readers / was_in:,.0f}; {was_cpu / readers * 1e6:.0f} µs) before the queue",
                f"{was / now:.2f} ({was_in / now_in:.2f}; {was_cpu / now_cpu:.2f})")]


def _each(count: int, seconds: list[float]) -> str:
    return ", ".join(f"{count / s:,.0f}" for s in seconds)


def _loads(loads: list[str]) -> None:
    print("    load: " + " → ".join(load.split("load average:")[1].strip() for load in loads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("which", choices=["workers", "enqueue", "claims", "sqlite", "all"])
    parser.add_argument("--runs", type=int, default=3, help="runs of each timing, medians reported (default 3)")
    parser.add_argument("--readers", type=int, default=20_000, help="readers of (a) and (d) (default 20,000)")
    parser.add_argument("--connections", type=int, default=10, help="the relay's connections (default 10)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4],
                        help="how many `digest worker` processes (a) runs, each in turn (default 1 2 4)")
    parser.add_argument("--claims", type=int, default=50, help="claims timed in (c) (default 50)")
    parser.add_argument("--before", type=Path, default=BEFORE,
                        help=f"the checkout before the queue, with its .venv, for (d) (default {BEFORE})")
    args = parser.parse_args()
    benches: dict[str, Callable[[], list[Row]]] = {
        "workers": lambda: bench_workers(args.readers, args.runs, args.connections, tuple(args.workers)),
        "enqueue": lambda: bench_enqueue(args.runs),
        "claims": lambda: bench_claims(args.claims, args.connections),
        "sqlite": lambda: bench_sqlite(args.readers, args.runs, args.connections, args.before),
    }
    rows: list[Row] = []
    for name, bench in benches.items():
        if args.which in (name, "all"):
            rows += bench()
    print(f"\n(machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {uptime()})\n")
    print("| measured | digest | reference | ratio |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row.what} | {row.ours} | {row.reference} | {row.ratio} |")


if __name__ == "__main__":
    main()
