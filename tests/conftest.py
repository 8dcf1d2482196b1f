"""The suite's fixtures and options, built from the helpers in tests/support/ (which test modules import
directly: nothing is imported from this file)."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.browser import launch, screenshot_folder
from support.databases import ENGINES, fresh_database
from support.feed_server import FeedServer
from support.paths import EXAMPLES, GOLDEN, ROOT
from support.smtp import SmtpServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from digest.core.config import Settings
    from subscribers import Store

# The project's own modules and Playwright are imported in the fixtures that use them: one that fails
# to import fails the tests that need it, not the whole run.


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="Rewrite tests/golden/ from the current output instead of comparing (review the diff!).",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """compare(name, text): equal to tests/golden/NAME, or rewrite it with --regen-golden."""
    regen = request.config.getoption("--regen-golden") or os.environ.get("DIGEST_REGEN_GOLDEN") == "1"

    def compare(name: str, text: str) -> None:
        path = GOLDEN / name
        if regen:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            return
        assert path.exists(), f"{path} is missing: run pytest --regen-golden once and review it"
        with open(path, encoding="utf-8", newline="") as handle:  # CRLF in an .eml is part of it
            expected = handle.read()
        assert text == expected, f"output differs from {path}; if the change is intended, run pytest --regen-golden"

    return compare


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """Serves the checkout: feed_server.url("tests/fixtures/feeds/rss2.xml"), …("examples/sources/…")."""
    server = FeedServer(ROOT)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def example_settings() -> Settings:
    """examples/digest.toml, read."""
    from digest.core.config import load

    return load(EXAMPLES / "digest.toml")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty subscribers store: a real SQLite file in the test's folder."""
    from subscribers import Store

    return Store.open(tmp_path / "digest.db")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1 recording every message (smtp_server.handler: a support.smtp.Recorder)."""
    server = SmtpServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, one per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go for a person to look at (support.browser.screenshot_folder)."""
    folder = screenshot_folder(tmp_path_factory.getbasetemp())
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(params=ENGINES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each engine in turn, a database of this test's own: a SQLite path, or a PostgreSQL URL whose
    database is dropped after the test."""
    with fresh_database(request.param, tmp_path) as where:
        yield where
