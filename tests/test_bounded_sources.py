"""Every source is read with a size limit: local files like URLs (20 MiB), Markdown features tighter
(1 MiB), read by cmark-gfm, whose cost is linear."""
from __future__ import annotations

import asyncio
import os

import pytest

from digest.core.config import SourceSpec
from digest.core.errors import SourceError
from digest.pipeline.sources import MAX_BYTES, Context, fetch_all, markdown

from support.cli import digest
from support.paths import DAY, TZ

HEAD = "---\ntitle: Un dossier\npublished: 2026-11-29T10:00:00+01:00\n---\n"


def fetch(path) -> object:
    [result] = asyncio.run(fetch_all([SourceSpec(str(path), str(path))], timeout=5))
    return result


def test_a_local_file_larger_than_the_cap_is_refused_and_one_at_the_cap_is_read(tmp_path):
    big, fits = tmp_path / "big.txt", tmp_path / "fits.txt"
    with open(big, "wb") as handle:
        handle.truncate(MAX_BYTES + 1)  # sparse: no disk is filled for this
    with open(fits, "wb") as handle:
        handle.truncate(MAX_BYTES)
    refused = fetch(big)
    assert isinstance(refused, SourceError)
    assert str(refused) == (f"source '{big}': {big} is larger than 20 MiB "
                            "(no source of a day is that big: check the file)")
    assert len(fetch(fits).data) == MAX_BYTES


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_file_is_refused_after_the_cap_not_read_forever():
    refused = fetch("/dev/zero")
    assert isinstance(refused, SourceError) and "larger than 20 MiB" in str(refused)


def test_the_cli_names_a_file_too_large_on_one_line(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(MAX_BYTES + 1)
    small = tmp_path / "page.txt"
    small.write_text("- 10:00 Une brève du jour\n", encoding="utf-8")
    result = digest("gather", "--source", str(big), "--source", str(small), "--date", DAY.isoformat(),
                    "--timezone", "Africa/Casablanca")
    assert result.returncode == 1
    assert f"digest: error: source '{big}': {big} is larger than 20 MiB (no source of a day is that big: check the file)" \
        in result.stderr.splitlines()
    assert "Une brève du jour" in result.stdout and "Traceback" not in result.stderr


def read_feature(body: str, data: bytes | None = None):
    spec = SourceSpec("dossier", "dossier.md")
    warnings: list[str] = []
    return markdown.read(data if data is not None else (HEAD + body).encode(), Context(spec, DAY, TZ, warnings.append))


def test_a_feature_over_its_cap_is_refused():
    with pytest.raises(SourceError, match="the feature is larger than 1 MiB"):
        read_feature("", (HEAD + "x" * markdown.MAX_BYTES).encode())
    [item] = read_feature("", (HEAD + "Un paragraphe. " * ((markdown.MAX_BYTES - len(HEAD)) // 15)).encode())
    assert item.body


def test_markdown_stays_markdown_whatever_its_markup():
    many = "Une liste de crochets " + "[" * 20_000 + " fin"  # python-markdown: about a minute
    tags = " ".join("<b>gras</b>" for _ in range(40))
    [item] = read_feature(f"Un **premier** paragraphe avec [un lien](https://x.example/a).\n\n{many}\n\n"
                          f"Avec **Markdown** : {tags}\n\nUn _dernier_ paragraphe.\n")
    assert item.body == ("Un premier paragraphe avec un lien.", many,
                         "Avec Markdown : " + " ".join(["gras"] * 40), "Un dernier paragraphe.")


def test_hostile_markdown_reads_in_linear_time():
    """The one timed test here, as the issue asks for a bound: each hostile body (64 KiB) reads in
    under 30 s. Measured on a busy 2-core machine: 0.1 s at most (python-markdown: 8 KB of "["
    took 8 s, 16 KB 46 s, and this would have run for hours)."""
    import time

    size = 64 * 1024
    bodies = {
        "one paragraph of [": "[" * size,
        "links ahead": "[" * (size // 2) + "](y)" * (size // 8),
        "emphasis": "*" * (size // 2) + "x" + "*" * (size // 2),
        "escapes": "\\[" * (size // 2),
        "entities": "&lt;" * (size // 4),
        "unclosed tags, split": "\n\n".join("<a " * 8 for _ in range(size // 26)),
        "64 [ in long paragraphs": "\n\n".join("[" * 64 + "y " * 8000 for _ in range(size // 16066)),
        "nested quotes": ">" * size + " x",
    }
    for name, body in bodies.items():
        started = time.perf_counter()
        read_feature(body)
        assert time.perf_counter() - started < 30, name


def test_html_nested_without_end_keeps_its_text_and_costs_linear_time():
    """nh3's HTML5 tree builder is quadratic in nesting depth: past MAX_DEPTH the structure is dropped
    before any parser sees it (1 MB of "<div>" took minutes; now a tenth of a second)."""
    import time

    from digest.pipeline.sanitize import MAX_DEPTH, paragraphs, too_deep

    assert not too_deep("<div>" * MAX_DEPTH) and too_deep("<div>" * (MAX_DEPTH + 1))
    assert not too_deep("<p>un<p>deux<li>trois<br>" * 10_000)  # elements a browser closes by itself
    started = time.perf_counter()
    assert paragraphs("<div>" * 200_000 + "le texte &amp; lui seul" + "</div>" * 10) == ("le texte & lui seul",)
    assert time.perf_counter() - started < 30  # measured 0.05 s; the margin is for a loaded machine
    assert paragraphs("<blockquote>" * 3 + "<p>gardé</p>") == ("gardé",)
