"""Where things are for the tests, and the reference day every count in them is about."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
FIXTURES = TESTS / "fixtures"
GOLDEN = TESTS / "golden"
EXAMPLES = ROOT / "examples"
SEED = ROOT.parent / "shared" / "seeds" / "000_fb67cff44d161e2b.txt"
if not SEED.exists():  # CI clones elsewhere but keeps shared/ beside the checkout; the example is a byte copy
    SEED = EXAMPLES / "sources" / "homepage-2026-11-29.txt"

# 2026-11-29 in Africa/Casablanca (UTC+01:00 that day): tests/fixtures/README.md counts for this day.
DAY = date(2026, 11, 29)
TZ_NAME = "Africa/Casablanca"
TZ = ZoneInfo(TZ_NAME)
