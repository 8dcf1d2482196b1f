"""The errors a user can cause, each with a hint and an exit code; the CLI prints them, never a traceback.

    DigestError                          exit code 2 unless said otherwise; .message, .hint
    ├── ConfigError                      digest.toml or an option is wrong (2)
    ├── SourceError                      one source could not be read; the others go on (1); .source
    ├── ThemeError                       a template of the theme cannot be rendered (2)
    ├── StoreError                       the subscriber database cannot be opened or read (2)
    ├── InvalidSubscriber (+ValueError)  a subscriber field a user gave is wrong (2); .reason
    ├── CsvError                         a CSV file cannot be imported at all; nothing was (2)
    ├── LedgerError                      the ledger cannot be written: the send stopped (1)
    └── MailboxError                     the bounce mailbox (IMAP) cannot be read: nothing was moved (1)

Every one of them is something a person can mend: the message says what went wrong and with which
input, the hint what to do. Anything else that escapes is a bug and keeps its traceback.
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


class ThemeError(DigestError):
    """A template of the theme cannot be rendered (the configuration is wrong)."""

    exit_code = 2


class StoreError(DigestError):
    """The database cannot be opened or read; the message names it (never with a password)."""

    exit_code = 2


class InvalidSubscriber(DigestError, ValueError):
    """A field a user gave is not acceptable; ``reason`` says which and why, in a few words.

    A ValueError for library callers, a DigestError so that the command line prints it on one line.
    """

    exit_code = 2

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(reason, hint)
        self.reason = reason


class CsvError(DigestError):
    """The file as a whole cannot be imported (nothing was imported)."""

    exit_code = 2


class LedgerError(DigestError):
    """The ledger cannot be written: sending on unrecorded could double a reader, so the run stopped."""

    exit_code = 1


class MailboxError(DigestError):
    """The bounce mailbox cannot be reached, logged in to or read; the message names the server."""

    exit_code = 1
