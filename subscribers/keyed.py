"""Keyed hashes of what must be recognised but never kept: an erased address, a sign-up's address,
network and domain in the form's limits. HMAC-SHA256 under a key derived from the signing keys, so a
copy of the database alone cannot tell which addresses they stand for."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


class Hasher:
    """Keyed hashes under every key version held; the current one writes, all of them recognise."""

    def __init__(self, keys: Mapping[int, bytes], current: int) -> None:
        if not keys or current not in keys:
            raise ValueError("the current key version must be one of the keys")
        self._keys = dict(keys)
        self.current = current

    def digest(self, purpose: str, text: str, version: int | None = None) -> str:
        """The hash of `text` for `purpose` (each purpose has its own key), as 64 hex digits."""
        key = hmac.new(self._keys[version or self.current], f"digest/{purpose}/v1".encode(), hashlib.sha256).digest()
        return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def digests(self, purpose: str, text: str) -> dict[str, int]:
        """The hash of `text` under each key version held, with its version: what a lookup matches."""
        return {self.digest(purpose, text, version): version for version in self._keys}

    def __repr__(self) -> str:  # never the keys
        return f"Hasher(versions={sorted(self._keys)}, current={self.current})"
