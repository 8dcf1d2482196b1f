"""Secrets (the SMTP password, the DKIM key) come from an environment variable or a file, never from
digest.toml itself, and are never printed: one reader for all of them."""
from __future__ import annotations

import os
from pathlib import Path

from digest.core.errors import ConfigError


def read_secret(env_name: str | None, path: Path | None, what: str) -> str | None:
    """The secret named by ``<what>_env`` (an environment variable) or ``<what>_file`` (a file, its
    surrounding white space dropped); None when neither is set. Errors name the key, never the value."""
    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            raise ConfigError(f"{what}_env names {env_name}, which is not set in this environment")
        return value
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{what}_file: cannot read {path}: {exc.strerror or exc}") from None
    return None
