"""Benchmark: what a variant costs, cut from its language's pieces, against a full render of it.

Run on purpose (pytest does not collect it):

    python tests/benchmarks/bench_variants.py [--runs 15]

For the example day and a generated 500-item day (one RSS file, caps raised to 200): today's
per-variant render (Jinja → MJML → premailer for the variant alone, `Renderer.render_full`), the
first variant of a language (its pieces made: one render and one inlining of every item, then the
cut), and each further variant of that language (the cut only), medians after one warm-up. Then a
`digest send --dry-run` of 300 readers who chose 300 different variants (3 languages × 100 choices of
rubrics), against 300 readers on one variant, and against the same 300 variants rendered in full.
"""
from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The tests' shared helpers (tests/support), and the checkout's packages, wherever this is run from.
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from digest.core.config import load  # noqa: E402
from digest.core.model import Variant  # noqa: E402
from digest.delivery.send import Sender, dry_run  # noqa: E402
from digest.pipeline.edition import prepare  # noqa: E402
from digest.pipeline.render import Renderer  # noqa: E402
from subscribers.store import Store  # noqa: E402
from subscribers.tokens import Tokens, load_keys  # noqa: E402

from support.bigday import big_day  # noqa: E402
from support.newsroom import config_text  # noqa: E402
from support.paths import DAY, EXAMPLES  # noqa: E402


def choices(keys: list[str], count: int) -> list[frozenset[str] | None]:
    """`count` different choices of rubrics: all, then every pair, triple … in the newsroom's order."""
    found: list[frozenset[str] | None] = [None]
    for size in range(1, len(keys)):
        found += [frozenset(c) for c in itertools.combinations(keys, size)]
    return found[:count]


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def bench_day(label: str, settings, runs: int) -> None:
    edition = prepare(settings, DAY).edition
    keys = [r.key for r in settings.rubrics]
    every = choices(keys, 1 << len(keys))
    # A spread of choices, all rubrics first: one, a few, most of them (the bigger, the dearer today).
    picks = [every[(i * len(every)) // (runs + 1)] for i in range(runs + 1)]
    renderer = Renderer(settings)
    renderer.render_full(edition, Variant("fr"))  # warm-up: templates compiled, imports done
    full = []
    for rubrics in picks[:runs]:
        t0 = time.perf_counter()
        renderer.render_full(edition, Variant("fr", rubrics))
        full.append(time.perf_counter() - t0)
    first, further = [], []
    for run in range(runs + 1):
        renderer.forget()
        t0 = time.perf_counter()
        renderer.render(edition, Variant("fr"))
        t1 = time.perf_counter()
        renderer.render(edition, Variant("fr", picks[1 + run % runs]))
        t2 = time.perf_counter()
        if run:  # the first pass is the warm-up
            first.append(t1 - t0)
            further.append(t2 - t1)
    for rubrics in every[:100]:  # and many more on the same pieces
        t0 = time.perf_counter()
        renderer.render(edition, Variant("fr", rubrics))
        further.append(time.perf_counter() - t0)
    today, cut = median_ms(full), median_ms(further)
    print(f"\n{label}: {sum(len(s.items) for s in edition.sections)} items in sections")
    print(f"  today's render of a variant        {today:8.1f} ms   (render_full, median of {len(full)}; "
          f"all rubrics: {full[0] * 1000:.1f} ms)")
    print(f"  first variant of a language        {median_ms(first):8.1f} ms   (its pieces made, then cut)")
    print(f"  each further variant               {cut:8.2f} ms   (median of {len(further)}: 1/{today / cut:.0f} of today's)")


def fill(store: Store, picks: list[tuple[str, frozenset[str] | None]]) -> None:
    with store.bulk() as tx:
        for i, (locale, rubrics) in enumerate(picks):
            tx.add(f"reader{i:04d}@example.com", name=f"Lecteur {i}", locale=locale, timezone="Africa/Casablanca",
                   rubrics=rubrics or frozenset())


def bench_dry_run(folder: Path, readers: int, variants: int, whole: bool) -> tuple[float, float, int]:
    """A dry run's time, of which rendering; the variants it rendered."""
    folder.mkdir()
    (folder / "digest.toml").write_text(config_text(folder), encoding="utf-8")
    settings = load(folder / "digest.toml")
    keys = [r.key for r in settings.rubrics]
    per_language = choices(keys, max(1, variants // 3))
    picks = [(loc, rubrics) for rubrics in per_language for loc in ("fr", "en", "ar")][:variants]
    store = Store.open(settings.database)
    fill(store, [picks[i % len(picks)] for i in range(readers)])
    keys_, current = load_keys(settings.secret_file)
    sender = Sender(settings, prepare(settings, DAY), store, Tokens(keys_, current, settings.newsletter.list_id))
    renderer = sender.renderer
    spent = [0.0]
    way = renderer.render_full if whole else renderer.render

    def timed(edition, variant=None):
        t0 = time.perf_counter()
        try:
            return way(edition, variant or Variant(settings.newsletter.locale))
        finally:
            spent[0] += time.perf_counter() - t0

    renderer.render = timed  # type: ignore[method-assign]
    result = dry_run(sender)
    store.close()
    return result.elapsed, spent[0], len(result.variants)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {args.runs} runs per figure (median)")
    settings = load(EXAMPLES / "digest.toml")
    bench_day("example day (examples/digest.toml)", settings, args.runs)
    with tempfile.TemporaryDirectory() as folder:
        bench_day("generated 500-item day (one RSS file, caps raised to 200)", big_day(settings, Path(folder)), args.runs)
    print("\ndigest send --dry-run, example day (the whole run: ledger read, render, personalise every message)")
    with tempfile.TemporaryDirectory() as folder:
        for name, readers, variants, whole in (("300 readers, 1 variant", 300, 1, False),
                                               ("300 readers, 300 variants", 300, 300, False),
                                               ("300 readers, 300 variants rendered in full (today)", 300, 300, True)):
            elapsed, render, seen = bench_dry_run(Path(folder) / name.replace(" ", "-").replace(",", ""), readers,
                                                  variants, whole)
            print(f"  {name:<52} {elapsed:6.2f} s, of which rendering {render:6.2f} s ({seen} variants)")


if __name__ == "__main__":
    main()
