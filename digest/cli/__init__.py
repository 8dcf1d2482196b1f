"""The `digest` command line: parses options, calls the floors below, prints. No logic of its own.

Each command lives in a module of this package, imported only when it runs (`digest --help` and
`digest gather` never load the sender, the web server or the database layer):

    pipeline.py     gather, build
    send.py         send, worker
    status.py       status
    bounces.py      the `digest bounces` group: read, fetch
    report.py       report
    web.py          serve, preview
    subscribers.py  the `digest subscribers` group
    items.py        the `digest items` group: the store of items
    options.py      what they share: the options, the settings
    base.py         the Click context and one-line errors, loaded before any command
"""
from __future__ import annotations

import importlib
import sys

import click

from digest import __version__
from digest.cli.base import CONTEXT, DigestGroup, echo_error
from digest.core.errors import DigestError

# name → (module:attribute, the line `digest --help` shows): nothing is imported to list them.
COMMANDS = {
    "bounces": ("digest.cli.bounces:bounces", "Take in bounces and complaints that arrive after the send."),
    "build": ("digest.cli.pipeline:build", "Write the day's email: HTML, text and .eml."),
    "gather": ("digest.cli.pipeline:gather", "Print the day's items, ranked by rubric."),
    "items": ("digest.cli.items:items", "The store of items: list, search, gather a day, prune."),
    "preview": ("digest.cli.web:preview", "Serve a live preview of the edition for editors."),
    "report": ("digest.cli.report:report", "What each edition came to: bounces, complaints, unsubscribes."),
    "send": ("digest.cli.send:send", "Deliver the day's edition to every subscriber."),
    "serve": ("digest.cli.web:serve", "Serve one-click unsubscribe, preferences and the web archive."),
    "status": ("digest.cli.status:status", "Where each edition stands: who got it, who did not, and why."),
    "subscribers": ("digest.cli.subscribers:subscribers", "Who receives the digest: add, import, export, list, count,..."),
    "worker": ("digest.cli.send:worker", "Deliver every enqueued edition until stopped."),
}


class LazyGroup(DigestGroup):
    """The commands of COMMANDS, each imported when it is run or asked for its own --help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="digest")
def cli() -> None:
    """digest: turn a newsroom's day into a ranked email digest, and deliver it.

    \b
    A day's work:  digest build -c digest.toml --check      look at it
                   digest preview -c digest.toml            or watch it while editing
                   digest send -c digest.toml               deliver it (again: only what is left)
    \b
    Exit codes: 0 ok; 1 partly done (a source failed, messages deferred or failed);
                2 usage or configuration error.
    """


def main() -> None:
    """Entry point: an error a user can cause is one line on stderr with its exit code, never a traceback."""
    try:
        cli.main(prog_name="digest", standalone_mode=False)
    except click.exceptions.Abort:
        echo_error("error", "interrupted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DigestError as exc:
        echo_error("error", str(exc))
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(1)
