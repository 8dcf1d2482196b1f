"""The errors a user can cause, each with a hint; the CLI prints them, never a traceback.

    DigestError                  exit code 2 unless said otherwise
    ├── ConfigError              digest.toml or an option is wrong (exit 2)
    └── SourceError              one source could not be read (the others go on; exit 1)
"""
from __future__ import annotations


class DigestError(Exception):
    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(DigestError):
    exit_code = 2


class SourceError(DigestError):
    """A source failed; ``source`` names it as the user wrote it."""

    exit_code = 1

    def __init__(self, source: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.source = source

    def __str__(self) -> str:
        text = f"source {self.source!r}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text
