"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, never a downloaded browser."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from support.ports import PATIENCE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium tries to reach Google's hosts at every start.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def launch(playwright):
    if not os.path.exists(CHROMIUM):
        raise RuntimeError("Chromium is missing: apt-get install chromium (.ci/run does)")
    # Playwright's 30 s would be a race with a machine whose cores are busy: a safety net, not a pace.
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=PATIENCE * 1000)


def new_page(browser, **options):
    """A page whose actions and loads wait as long as a busy machine needs (Playwright's default is 30 s)."""
    page = browser.new_page(**options)
    page.set_default_timeout(PATIENCE * 1000)
    return page


def screenshot_folder(basetemp: Path) -> Path:
    """Where screenshots go for a person to look at: $DIGEST_SCREENSHOTS, else the run's own folder."""
    folder = Path(os.environ.get("DIGEST_SCREENSHOTS") or basetemp / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
