"""CSRF tokens for the preferences and confirmation forms, and the sign-up form's stamp: stateless, bound
to what they are for (a link token, the form), expiring."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

CSRF_MAX_AGE = 24 * 3600  # a preferences page left open for a day still saves


class FormGuard:
    """CSRF tokens for the preferences form, bound to the subscriber's link token.

    A form token is `vv tttttttttt mac`: the key version, the time it was issued (hex seconds) and
    HMAC-SHA256 over (version, time, list id, link token) with a key derived from the signing key
    of that version, so a form token is never a valid link token and vice versa. A POST must carry
    one made for the same link token, less than CSRF_MAX_AGE old: a page on another site cannot
    read ours (same-origin policy, no CORS), so it cannot get one. Stateless: no cookie, no session.
    """

    def __init__(self, keys: Mapping[int, bytes], current: int, list_id: str, max_age: int = CSRF_MAX_AGE) -> None:
        self._keys = {v: hmac.new(k, b"digest/csrf/v1", hashlib.sha256).digest() for v, k in keys.items()}
        self.current = current
        self.list_id = list_id
        self.max_age = max_age

    def make(self, link_token: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        head = f"{self.current:02x}{issued:010x}"
        return head + self._mac(self.current, issued, link_token)

    def check(self, link_token: str, value: object, now: float | None = None) -> bool:
        return self.age(link_token, value, now) is not None

    def age(self, link_token: str, value: object, now: float | None = None) -> float | None:
        """Seconds since a valid token was made (0 for one dated up to a minute ahead: clock skew between
        workers); None for one not made for `link_token`, or older than max_age. The sign-up form's
        stamp is such a token, bound to the form instead of a link: its age says how fast it was filled."""
        if not isinstance(value, str) or not 13 <= len(value) <= 100 or not value.isascii():
            return None
        try:
            version, issued = int(value[:2], 16), int(value[2:12], 16)
        except ValueError:
            return None
        if version not in self._keys:
            return None
        age = (time.time() if now is None else now) - issued
        if not -60 <= age <= self.max_age:
            return None
        if not hmac.compare_digest(self._mac(version, issued, link_token), value[12:]):
            return None
        return max(age, 0.0)

    def _mac(self, version: int, issued: int, link_token: str) -> str:
        message = f"{version}:{issued}:{self.list_id}:{link_token}".encode()
        digest = hmac.new(self._keys[version], message, hashlib.sha256).digest()[:24]
        return base64.urlsafe_b64encode(digest).decode("ascii")
