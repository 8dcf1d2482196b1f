"""Golden files: the example edition as a subscriber gets it. Regenerate on purpose with
`pytest --regen-golden` (or DIGEST_REGEN_GOLDEN=1), then read the diff before committing it."""
from __future__ import annotations

import json

import pytest

from support.cli import digest
from support.paths import EXAMPLES


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("edition")
    # support.cli pins SOURCE_DATE_EPOCH: the message's Date header is the same at every run.
    result = digest("build", "-c", str(EXAMPLES / "digest.toml"), "--date", "2026-11-29", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_example_edition_html(built, golden):
    golden("example-2026-11-29/digest.html", (built / "digest.html").read_text(encoding="utf-8"))


def test_example_edition_text(built, golden):
    golden("example-2026-11-29/digest.txt", (built / "digest.txt").read_text(encoding="utf-8"))


def test_example_edition_eml(built, golden):
    golden("example-2026-11-29/digest.eml", (built / "digest.eml").read_bytes().decode("ascii"))


def test_seed_gathered_as_json(golden):
    result = digest("gather", "--source", "examples/sources/homepage-2026-11-29.txt", "--date", "2026-11-29",
                    "--timezone", "Africa/Casablanca", "--format", "json")
    assert result.returncode == 0, result.stderr
    golden("seed-2026-11-29.json", json.dumps(json.loads(result.stdout), ensure_ascii=False, indent=2) + "\n")
