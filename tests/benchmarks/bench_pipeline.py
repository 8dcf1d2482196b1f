"""Benchmark: gather, rank and render timed separately, for the example day and a generated 500-item day.

Run on purpose (pytest does not collect it):

    python tests/benchmarks/bench_pipeline.py [--runs 15]

Figures are medians over the runs, each stage warmed up once first. Render is split into its own
steps (Jinja → MJML, mjml-python compile, premailer inlining) so that a ratio shows where time goes.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import mjml

# The tests' shared helpers (tests/support), and the checkout's packages, wherever this is run from.
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from digest.core.config import SourceSpec, load  # noqa: E402
from digest.core.model import Variant  # noqa: E402
from digest.pipeline.gather import gather  # noqa: E402
from digest.pipeline.rank import rank  # noqa: E402
from digest.pipeline.render import Renderer, inline_css  # noqa: E402

from support.bigday import write_big_feed  # noqa: E402
from support.paths import DAY, EXAMPLES, TZ  # noqa: E402


def median_ms(func, runs: int) -> tuple[float, object]:
    result = func()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, result


def bench(label: str, settings, specs, runs: int) -> None:
    gather_ms, gathered = median_ms(lambda: gather(specs, DAY, TZ), runs)
    rank_ms, edition = median_ms(lambda: rank(gathered.items, settings, DAY, settings.newsletter.timezone), runs)
    renderer = Renderer(settings)
    # A whole render of one variant (what every variant cost before the pieces; bench_variants.py
    # shows what a further variant costs now).
    render_ms, rendered = median_ms(lambda: renderer.render_full(edition, Variant("fr")), runs)

    # One full-size render taken apart (no budget search): where the milliseconds go.
    context = renderer._context(edition, Variant("fr"), None)
    context.update(subject=rendered.subject, preheader=rendered.preheader)
    template = renderer.env("fr").get_template("email/digest.mjml.j2")
    jinja_ms, source = median_ms(lambda: template.render(context), runs)
    mjml_ms, compiled = median_ms(lambda: mjml.mjml2html(source, fonts={}), runs)
    inline_ms, _ = median_ms(lambda: inline_css(compiled), runs)

    print(f"\n{label}: {len(gathered.items)} items in the day, {sum(len(s.items) for s in edition.sections)} in sections, "
          f"HTML {rendered.html_bytes:,} bytes, {rendered.moved_to_more} moved to 'more on the web'")
    print(f"  gather  {gather_ms:9.1f} ms")
    print(f"  rank    {rank_ms:9.2f} ms")
    print(f"  render  {render_ms:9.1f} ms   (budget search included)")
    print(f"    one pass: jinja {jinja_ms:.2f} ms, mjml compile {mjml_ms:.2f} ms, premailer {inline_ms:.1f} ms "
          f"(premailer / mjml = {inline_ms / mjml_ms:.0f}×)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {args.runs} runs per figure (median)")
    settings = load(EXAMPLES / "digest.toml")
    bench("example day (examples/digest.toml)", settings, list(settings.sources), args.runs)
    with tempfile.TemporaryDirectory() as folder:
        big = write_big_feed(Path(folder), 500)
        roomy = replace(settings, rubrics=tuple(replace(r, max_items=200) for r in settings.rubrics))
        bench("generated 500-item day (one RSS file, caps raised to 200)", roomy, [SourceSpec("big", str(big))], args.runs)


if __name__ == "__main__":
    main()
