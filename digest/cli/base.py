"""What the command line is made of before any command loads: the Click context, one-line errors,
and the group that turns a DigestError into one of them."""
from __future__ import annotations

import sys
from typing import IO, Any

import click

from digest.core.errors import DigestError

CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def echo_error(kind: str, text: str) -> None:
    click.echo(f"digest: {kind}: {text}", err=True)


class UserError(click.ClickException):
    """One line on stderr, `digest: error: …`, with the exit code of what the user can mend."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        # click declares exit_code a ClassVar, yet reads it from the exception it catches (Command.main),
        # as digest.cli.main does: one class can carry every code.
        self.exit_code = exit_code  # type: ignore[misc]

    def show(self, file: IO[Any] | None = None) -> None:
        echo_error("error", self.format_message())


class DigestGroup(click.Group):
    """A group whose commands' DigestErrors (and a database that refuses to be read) become one line
    on stderr with their exit code, however the group is run (`digest …`, or on its own in a test).
    Anything else is a bug, and keeps its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as exc:
            raise UserError(str(exc), exc.exit_code) from None
        except Exception as exc:
            # Only a command that opened the database can meet this, so SQLAlchemy is loaded by then.
            sa = sys.modules.get("sqlalchemy.exc")
            if sa is not None and isinstance(exc, sa.OperationalError):
                raise UserError(f"database error: {str(exc.orig).splitlines()[0]}", 1) from None
            raise
