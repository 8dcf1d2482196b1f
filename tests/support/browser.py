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


# The example newsroom's pictures live on its own (made-up) site: a page that shows an email answers
# them with drawings of the same size, so that screenshots look like what a reader sees.
_LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="360" height="96" viewBox="0 0 360 96">'
         '<rect width="360" height="96" fill="#ffffff"/><rect x="0" y="0" width="96" height="96" fill="#8e1b1b"/>'
         '<text x="48" y="68" font-family="Georgia, serif" font-size="60" fill="#fff" text-anchor="middle">Q</text>'
         '<text x="112" y="64" font-family="Georgia, serif" font-size="36" fill="#111">Le Quotidien</text></svg>')
_PHOTO = ('<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="675" viewBox="0 0 1200 675">'
          '<defs><linearGradient id="s" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#8fb8d8"/>'
          '<stop offset="1" stop-color="#dfeaf2"/></linearGradient></defs><rect width="1200" height="675" fill="url(#s)"/>'
          '<rect y="430" width="1200" height="245" fill="#2f6f8f"/><rect x="160" y="300" width="520" height="150" fill="#c9ced6"/>'
          '<rect x="720" y="250" width="60" height="200" fill="#9aa3ad"/><rect x="820" y="330" width="260" height="120" fill="#b6bdc6"/></svg>')


def show_pictures(page) -> None:
    """Answer the example newsroom's picture requests (never fetched from the network) with drawings."""
    def answer(route):
        body = _LOGO if "logo" in route.request.url else _PHOTO
        route.fulfill(status=200, content_type="image/svg+xml", body=body)
    page.route("https://lequotidien.example.ma/**", answer)
