"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, never a downloaded browser."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium tries to reach Google's hosts at every start.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def launch(playwright):
    if not os.path.exists(CHROMIUM):
        raise RuntimeError("Chromium is missing: apt-get install chromium (.ci/run does)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def screenshot_folder(basetemp: Path) -> Path:
    """Where screenshots go for a person to look at: $DIGEST_SCREENSHOTS, else the run's own folder."""
    folder = Path(os.environ.get("DIGEST_SCREENSHOTS") or basetemp / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
