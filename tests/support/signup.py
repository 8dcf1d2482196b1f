"""The sign-up form as a test fills it: the example newsroom with [signup] set as the test wants, the
form's stamp read from the page `digest serve` gave, and the emails the sign-up left in the outbox or
at an SMTP server."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

from support.mail import parse
from support.newsroom import PREFIX, SITE, Newsroom

with warnings.catch_warnings():  # Starlette 1.x suggests a fork of httpx for its test client; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

FORM = f"{PREFIX}/subscribe"
CONFIRM_LINK = re.compile(rf"{re.escape(SITE + PREFIX)}/subscribe/confirm/([A-Za-z0-9_-]+)")


def signup_room(tmp: Path, subscribers: int = 2, smtp: str = "", **signup: object) -> Newsroom:
    """The example newsroom whose [signup] keys are replaced by `signup` (min_seconds 0 unless given)."""
    room = Newsroom(tmp, subscribers=subscribers, smtp=smtp)
    signup.setdefault("min_seconds", 0)

    def edit(text: str) -> str:
        for key, value in signup.items():
            line = re.search(rf"(?m)^{key} = .*$", text)
            assert line, key
            rendered = str(value).lower() if isinstance(value, bool) else repr(value).replace("'", '"')
            text = text.replace(line.group(), f"{key} = {rendered}")
        return text

    room.edit_config(edit)
    return room


def client(app, ip: str = "198.51.100.20") -> TestClient:
    """A test client that comes from `ip` (its network is what the limits count)."""
    return TestClient(app, base_url=SITE, follow_redirects=False, client=(ip, 40000))


def stamp_of(html: str) -> str:
    return re.search(r'name="stamp" value="([^"]+)"', html).group(1)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def fill(http: TestClient, email: str, name: str = "", locale: str = "fr", rubrics: tuple[str, ...] = (),
         honeypot: str = "", stamp: str | None = None, headers: dict[str, str] | None = None):
    """GET the form, then POST it back filled in (with the stamp it carried, unless `stamp` is given)."""
    if stamp is None:
        stamp = stamp_of(http.get(FORM).text)
    data = {"email": email, "name": name, "locale": locale, "rubric": list(rubrics), "stamp": stamp, "website": honeypot}
    return http.post(FORM, data=data, headers=headers or {})


def letters(tmp: Path, kind: str = "signup") -> list[bytes]:
    """The sign-up emails in the outbox, oldest first: kind "signup" (confirmations) or "welcome"."""
    folder = tmp / "outbox" / "signup"
    files = sorted(folder.glob(f"{kind}-*.eml"), key=lambda p: p.stat().st_mtime_ns) if folder.is_dir() else []
    return [f.read_bytes() for f in files]


def confirm_path(data: bytes) -> str:
    """The confirmation link of an email, as a path on the test server."""
    text = parse(data).get_body(("plain",)).get_content()
    return f"{PREFIX}/subscribe/confirm/{CONFIRM_LINK.search(text).group(1)}"
