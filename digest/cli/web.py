"""`digest serve` (the public web application: unsubscribe, preferences, archive) and `digest preview`
(the editors' live preview), each under uvicorn."""
from __future__ import annotations

import logging
import signal
from types import FrameType

import click
import uvicorn

from digest.cli.options import (
    CONTEXT,
    config_option,
    database_option,
    load_settings,
    need_config,
)
from digest.core import config
from digest.web import preview as live
from digest.web.serve import (
    KEEP_ALIVE,
    MAX_BODY,
    MAX_CONNECTIONS,
    MAX_REQUEST_HEAD,
    REQUEST_TIMEOUT,
    create_app,
    prefix_of,
    uvicorn_options,
)
from subscribers.store import Store

HELP = f"""Serve the pages the emails link to, and the sign-up form, under the path of newsletter.base_url:

\b
  POST <base>/unsubscribe/TOKEN     RFC 8058 one-click unsubscribe (200, no redirect)
  GET  <base>/unsubscribe/TOKEN     a confirmation page whose button POSTs
  GET  <base>/preferences/TOKEN     language and rubrics, subscribe again (CSRF-protected)
  GET  <base>/archive/              past editions; <base>/archive/YYYY-MM-DD.html each one
  GET  <base>/archive/feed.xml      the archive as an Atom feed, each edition's full content
  GET  <base>/subscribe             the sign-up form ([signup] in digest.toml): double opt-in, the
                                    confirmation link valid 48 hours, limits shared by every process

\b
The one-click POST unsubscribes with the body List-Unsubscribe=One-Click sent as
  application/x-www-form-urlencoded    what mail providers send (other fields ignored)
  multipart/form-data                  a field List-Unsubscribe whose value is One-Click
  no or any other Content-Type         a bare body that is exactly List-Unsubscribe=One-Click
Any other body is 400 and changes nothing.

Limits, for a public port: request line and headers {MAX_REQUEST_HEAD // 1024} KiB (else 431 or 400),
body {MAX_BODY // 1024} KiB (else 413), each request whole within --request-timeout (else closed; a
body cut short: 408), an idle connection kept {KEEP_ALIVE} s after its last answer, a client that
reads nothing of its answer for --request-timeout dropped, --max-connections open at once (503 at
the limit). Run it behind a reverse proxy that terminates TLS all the same (see the README).

One log line per request, with tokens cut out of the path and control characters percent-encoded;
499 means the client left before its request was read. SIGINT or SIGTERM finishes the requests in
flight, then stops.
"""



@click.command("serve", context_settings=CONTEXT, help=HELP,
               short_help="Serve sign-up, one-click unsubscribe, preferences and the web archive.")
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, envvar="DIGEST_HOST",
              help="Address to listen on; keep 127.0.0.1 behind a reverse proxy. [env: DIGEST_HOST]")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(0, 65535), envvar="DIGEST_PORT",
              help="Port to listen on. [env: DIGEST_PORT]")
@database_option
@click.option("--trusted-proxy", "trusted", default="127.0.0.1", show_default=True, metavar="ADDRESSES",
              envvar="DIGEST_TRUSTED_PROXY",
              help="Comma-separated addresses whose X-Forwarded-For/-Proto headers are believed. [env: DIGEST_TRUSTED_PROXY]")
@click.option("--request-timeout", type=click.FloatRange(0.1, 3600), default=REQUEST_TIMEOUT, show_default=True,
              metavar="SECONDS", envvar="DIGEST_REQUEST_TIMEOUT",
              help="A request must arrive whole within this long of the connection opening or of the previous "
                   "answer, else the connection is closed (a body cut short: 408); a client that reads nothing "
                   "of its answer for as long is dropped. [env: DIGEST_REQUEST_TIMEOUT]")
@click.option("--max-connections", type=click.IntRange(1, 100_000), default=MAX_CONNECTIONS, show_default=True,
              metavar="N", envvar="DIGEST_MAX_CONNECTIONS",
              help="Open connections at most: at N a request is answered 503, beyond N a new connection is "
                   "closed at once. [env: DIGEST_MAX_CONNECTIONS]")
def serve(config_path: str | None, host: str, port: int, database: str | None, trusted: str,
          request_timeout: float, max_connections: int) -> None:
    """Serve the public web application under uvicorn, with digest's limits (HELP says what)."""
    settings = load_settings(config_path, database=database)
    need_config(settings, "serve", "the site's address, the list id and the archive come from it")
    store = Store.open(settings.database, create=False)  # unsubscribe pages for a list that does not exist: no
    app = create_app(settings, store, request_timeout=request_timeout)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prefix = prefix_of(settings.newsletter.base_url) or "/"
    click.echo(f"Serving {settings.newsletter.name} at http://{host}:{port}{prefix} for {settings.newsletter.base_url} "
               f"(config {settings.path}, subscribers {store.where()}, archive {settings.archive}; Ctrl-C to stop)")
    # uvicorn finishes the requests in flight on SIGINT/SIGTERM, then raises the signal again for
    # the handler it found: this one, so that a clean shutdown ends with status 0 (and a signal that
    # comes before uvicorn listens simply ends the process).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # our logging, above
        access_log=False,  # uvicorn's access log would write tokens down; digest.serve logs each request
        proxy_headers=True,
        forwarded_allow_ips=trusted,
        server_header=False,
        timeout_graceful_shutdown=10,
        **uvicorn_options(request_timeout, max_connections),
    )


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@click.command(context_settings=CONTEXT, short_help="Serve a live preview of the edition for editors.")
@config_option
@click.option("--date", "day", metavar="YYYY-MM-DD", envvar="DIGEST_DATE", help="The edition's date (default: today). [env: DIGEST_DATE]")
@click.option("--timezone", metavar="ZONE", envvar="DIGEST_TIMEZONE", help="The newsroom's IANA time zone. [env: DIGEST_TIMEZONE]")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="DIGEST_PREVIEW_HOST", help="Address to listen on.")
@click.option("--port", default=8026, show_default=True, type=int, envvar="DIGEST_PREVIEW_PORT", help="Port to listen on.")
def preview(config_path: str | None, day: str | None, timezone: str | None, host: str, port: int) -> None:
    """Show the edition as readers will see it: at 375 px and 600+ px, as plain text, with the subject,
    the preheader, the size against the budget and the checks; pick a language and rubrics.

    \b
    Editing a template, digest.toml or a local source file reloads the page by itself. Nothing is
    opened for you: the URL is printed.
    """
    state = live.State(config.config_path(config_path), day, timezone)
    settings = state.load()  # a broken configuration is reported now, not on the first request
    config.edition_day(day, settings)
    click.echo(f"Preview of {settings.newsletter.name}: http://{host}:{port}/  (Ctrl-C to stop)")
    live.serve(state, host, port)
