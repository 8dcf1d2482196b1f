"""Signed tokens for unsubscribe and preferences links, and the secret keys that sign them.

A token is 44 characters from [A-Za-z0-9_-], always the same length, so the sender can put it in
place of a same-length placeholder inside already-encoded (quoted-printable) text:

    vv            key version, 2 lowercase hex digits (1–255)
    iiiiiiiiii    subscriber id, 10 lowercase hex digits (1 to 2**40 - 1)
    m × 32        base64url (no padding) of the first 24 bytes of
                  HMAC-SHA256(key[version], f"{version}:{subscriber_id}:{list_id}:{purpose}")

A confirmation link's token (`make_expiring`, purpose "confirm") also carries the time it was made,
and stops verifying `max_age` seconds later: 54 characters, vv, the sign-up's id (10 hex digits), the
time (10 hex digits of Unix seconds), then the MAC over all of them, the list id and the purpose.

The address never appears in a token. The list id and the purpose are signed but not written, so a
token of another newsletter, or an unsubscribe token used as a preferences token, does not verify.
Tokens of an older key version verify as long as that version is still in the keys: rotating the
secret (adding DIGEST_SECRET_2 beside DIGEST_SECRET_1) keeps the links in old emails working.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from digest.core.errors import ConfigError

VERSION_CHARS = 2
ID_CHARS = 10
MAC_BYTES = 24  # 192 bits: far beyond guessing, and a multiple of 3, so base64 needs no padding
MAC_CHARS = MAC_BYTES * 4 // 3
TOKEN_LENGTH = VERSION_CHARS + ID_CHARS + MAC_CHARS  # 44
MAX_VERSION = 16**VERSION_CHARS - 1
MAX_SUBSCRIBER_ID = 16**ID_CHARS - 1
MIN_SECRET_CHARS = 16
PURPOSES = ("unsubscribe", "preferences")

# Lowercase hex only: one subscriber and version have exactly one spelling, so a token can't be re-spelt.
_SHAPE = re.compile(rf"[0-9a-f]{{{VERSION_CHARS + ID_CHARS}}}[A-Za-z0-9_-]{{{MAC_CHARS}}}")
_EXPIRING = re.compile(rf"[0-9a-f]{{{VERSION_CHARS + 2 * ID_CHARS}}}[A-Za-z0-9_-]{{{MAC_CHARS}}}")
_PURPOSE = re.compile(r"[a-z][a-z0-9_-]*")
_ENV = re.compile(r"DIGEST_SECRET(?:_([0-9]+))?")


class Tokens:
    """Makes and checks the tokens of one newsletter (``list_id``) with versioned keys."""

    def __init__(self, keys: Mapping[int, bytes], current: int, list_id: str) -> None:
        if not keys or current not in keys:
            raise ValueError("the current key version must be one of the keys")
        if any(not 1 <= v <= MAX_VERSION or not key for v, key in keys.items()):
            raise ValueError(f"key versions run from 1 to {MAX_VERSION} and keys are not empty")
        self._keys = dict(keys)
        self.current = current
        self.list_id = list_id

    def make(self, subscriber_id: int, purpose: str = "unsubscribe") -> str:
        if not 1 <= subscriber_id <= MAX_SUBSCRIBER_ID:
            raise ValueError(f"subscriber id out of range: {subscriber_id}")
        prefix = f"{self.current:0{VERSION_CHARS}x}{subscriber_id:0{ID_CHARS}x}"
        return prefix + self._mac(self.current, subscriber_id, _check_purpose(purpose))

    def verify(self, token: str, purpose: str = "unsubscribe") -> int | None:
        """The subscriber id, or None for anything not made by ``make`` with a key we hold."""
        if not isinstance(token, str) or len(token) != TOKEN_LENGTH or not _SHAPE.fullmatch(token):
            return None
        version = int(token[:VERSION_CHARS], 16)
        subscriber_id = int(token[VERSION_CHARS:VERSION_CHARS + ID_CHARS], 16)
        if version not in self._keys or subscriber_id < 1:
            return None
        expected = self._mac(version, subscriber_id, _check_purpose(purpose))
        if not hmac.compare_digest(expected, token[VERSION_CHARS + ID_CHARS:]):
            return None
        return subscriber_id

    def make_expiring(self, item_id: int, purpose: str, issued: float) -> str:
        """A token for `item_id` that `verify_expiring` takes until `max_age` seconds after `issued`."""
        if not 1 <= item_id <= MAX_SUBSCRIBER_ID:
            raise ValueError(f"id out of range: {item_id}")
        head = f"{self.current:0{VERSION_CHARS}x}{item_id:0{ID_CHARS}x}{int(issued):0{ID_CHARS}x}"
        return head + self._mac(self.current, item_id, _check_purpose(purpose), int(issued))

    def verify_expiring(self, token: str, purpose: str, max_age: float, now: float) -> int | None:
        """The id, or None for a token not made by `make_expiring` with a key we hold, or too old."""
        head = VERSION_CHARS + 2 * ID_CHARS
        if not isinstance(token, str) or len(token) != head + MAC_CHARS or not _EXPIRING.fullmatch(token):
            return None
        version = int(token[:VERSION_CHARS], 16)
        item_id = int(token[VERSION_CHARS:VERSION_CHARS + ID_CHARS], 16)
        issued = int(token[VERSION_CHARS + ID_CHARS:head], 16)
        if version not in self._keys or item_id < 1 or not -60 <= now - issued <= max_age:  # a minute of clock skew
            return None
        if not hmac.compare_digest(self._mac(version, item_id, _check_purpose(purpose), issued), token[head:]):
            return None
        return item_id

    def derived_keys(self, purpose: str) -> dict[int, bytes]:
        """A key per version for another use of the signing keys (the VERP tags of return paths),
        derived for `purpose`: what one use signs never verifies as another's, and the keys stay here."""
        label = f"digest/{_check_purpose(purpose)}/v1".encode()
        return {version: hmac.new(key, label, hashlib.sha256).digest() for version, key in self._keys.items()}

    def _mac(self, version: int, subscriber_id: int, purpose: str, issued: int | None = None) -> str:
        fields = f"{version}:{subscriber_id}" if issued is None else f"{version}:{subscriber_id}:{issued}"
        message = f"{fields}:{self.list_id}:{purpose}".encode()
        digest = hmac.digest(self._keys[version], message, "sha256")[:MAC_BYTES]  # one call into OpenSSL
        return base64.urlsafe_b64encode(digest).decode("ascii")

    def __repr__(self) -> str:  # never the keys
        return f"Tokens(versions={sorted(self._keys)}, current={self.current}, list_id={self.list_id!r})"


@lru_cache(maxsize=64)  # a handful of purposes, all from the code
def _check_purpose(purpose: str) -> str:
    # No ':' in a purpose, so the signed message splits one way only.
    if not _PURPOSE.fullmatch(purpose):
        raise ValueError(f"invalid token purpose {purpose!r}")
    return purpose


def newsletter_tokens(secret_file: Path | None, list_id: str) -> Tokens:
    """The tokens of one newsletter, with the keys of DIGEST_SECRET[_N] or of `secret_file`."""
    keys, current = load_keys(secret_file)
    return Tokens(keys, current, list_id)


def load_keys(secret_file: Path | None, env: Mapping[str, str] = os.environ) -> tuple[dict[int, bytes], int]:
    """(keys by version, current version) from DIGEST_SECRET[_N], else from ``secret_file``.

    With neither, ``secret_file`` is created (mode 0600) with one random key, version 1, so that the
    first run needs no configuration. Errors name the variable or the file and line, never a secret.
    """
    keys = _from_env(env)
    if not keys and secret_file is not None:
        keys = _from_file(Path(secret_file)) if Path(secret_file).exists() else _create(Path(secret_file))
    if not keys:
        raise ConfigError("no secret key to sign unsubscribe links",
                          "set DIGEST_SECRET to a long random string, or give a secret file")
    return keys, max(keys)


def _from_env(env: Mapping[str, str]) -> dict[int, bytes]:
    keys: dict[int, bytes] = {}
    for name, value in env.items():
        match = _ENV.fullmatch(name)
        if not match:
            continue
        version = _version(match.group(1) or "1", name)
        if version in keys:
            raise ConfigError(f"{name}: key version {version} is set twice", "use DIGEST_SECRET or DIGEST_SECRET_1, not both")
        keys[version] = _secret(value, name)
    return keys


def _from_file(path: Path) -> dict[int, bytes]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the secret file: {getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    keys: dict[int, bytes] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}: line {number}"
        version_text, colon, secret = line.partition(":")
        if not colon:
            raise ConfigError(f"{where}: expected VERSION:SECRET")
        version = _version(version_text.strip(), where)
        if version in keys:
            raise ConfigError(f"{where}: key version {version} is there twice")
        keys[version] = _secret(secret.strip(), where)
    if not keys:
        raise ConfigError(f"{path}: the secret file has no key", "write one line VERSION:SECRET, or delete the file to get a new one")
    return keys


def _create(path: Path) -> dict[int, bytes]:
    """A new key file, made whole beside its place and then linked in: a second process starting at
    the same moment (serve and send from one timer) either wins or reads the winner's key, never a
    half-written file."""
    secret = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the secret file: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # whatever the umask
            handle.write("# digest signing keys, VERSION:SECRET; the highest version signs. Keep this file private.\n")
            handle.write(f"1:{secret}\n")
        try:
            os.link(partial, path)  # fails if the file exists: then theirs is the key
        except FileExistsError:
            return _from_file(path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot create the secret file: {exc.strerror}") from None
    finally:
        os.unlink(partial)
    return {1: secret.encode()}


def _version(text: str, where: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_VERSION:
        raise ConfigError(f"{where}: the key version must be a number from 1 to {MAX_VERSION}")
    return int(text)


def _secret(value: str, where: str) -> bytes:
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(f"{where}: the secret is shorter than {MIN_SECRET_CHARS} characters",
                          "use a long random string, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return value.encode("utf-8")
