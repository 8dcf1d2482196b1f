"""`digest serve`: the part of digest that faces the public internet, as one ASGI application.

Everything is served under the path of `newsletter.base_url` (https://example.ma/digest → /digest/…),
exactly where the emails link, so that a reverse proxy passes paths through unchanged:

    GET|HEAD  /                           the archive's index (also /archive and /archive/)
    GET|HEAD  /archive/YYYY-MM-DD.html    an edition's web page ("view in your browser")
    GET|HEAD  /static/digest.css          the pages' only stylesheet
    GET|HEAD  /unsubscribe/TOKEN          a confirmation page; never changes anything (scanners open links)
    POST      /unsubscribe/TOKEN          RFC 8058 one-click: body List-Unsubscribe=One-Click → 200, unsubscribed
    GET|HEAD  /preferences/TOKEN          language, rubrics, subscribe again
    POST      /preferences/TOKEN          saves them; needs the form's CSRF token
    GET|HEAD  /healthz                    "ok", for the proxy or a monitor
    GET|HEAD  /archive/feed.xml           the archive as an Atom feed, each edition's full content
    GET|HEAD  /subscribe                  the sign-up form ([signup] enabled; else 404)
    POST      /subscribe                  a sign-up: always the same "check your inbox" page (see signup.py)
    GET|HEAD  /subscribe/confirm/TOKEN    the confirmation link's page: a button, nothing changed
    POST      /subscribe/confirm/TOKEN    confirms (once; the link expires after 48 hours)

A TOKEN is the one the email carries (subscribers.tokens, purpose "unsubscribe"): the same token
opens the preferences page, since one slot per message fills both links. A token that does not
verify (forged, cut, altered, of another newsletter, of a key no longer held) is a 404, and
nothing changes. Every response carries the security headers below; no response redirects.

The one-click POST (RFC 8058) is accepted with the body `List-Unsubscribe=One-Click` sent as
  - application/x-www-form-urlencoded (what mail providers send; other fields are ignored),
  - multipart/form-data, as a field List-Unsubscribe with the value One-Click,
  - a bare body with no Content-Type or any other one (text/plain, application/octet-stream…) that
    is exactly `List-Unsubscribe=One-Click`, white space around it aside.
Anything else (another value, a JSON body, a bare body with more in it) is a 400 and changes nothing.

A public endpoint's limits: a request's line and headers stop at MAX_REQUEST_HEAD (431, or 400 from
the parser), its body at MAX_BODY (413); it must arrive whole within the request timeout of the
connection opening or of the previous answer, else the connection is closed (a body cut short is
answered 408); an idle connection is closed KEEP_ALIVE seconds after its last answer; a client that
reads nothing of its answer for the request timeout is dropped; connections are capped (GuardedH11Protocol).

The log has one line per request: method, path, status, time. The path never shows a token (see
`redact`) nor a control character; no client address is written. Status 499 means the client left
before its request was read whole (nothing changed).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router

from digest.core.config import Settings
from digest.web.serve.feed import Feed
from digest.web.serve.forms import CSRF_MAX_AGE, FormGuard
from digest.web.serve.guard import (
    CSP,
    KEEP_ALIVE,
    MAX_BODY,
    MAX_CONNECTIONS,
    MAX_REQUEST_HEAD,
    PRIVATE,
    REQUEST_TIMEOUT,
    SECURITY_HEADERS,
    Guard,
    prefix_of,
    redact,
)
from digest.web.serve.http import GuardedH11Protocol, uvicorn_options
from digest.web.serve.mailer import Mailer
from digest.web.serve.signup import SignupDesk
from digest.web.serve.site import DONE, NOTICES, ONE_CLICK, Site, mask
from subscribers.store import Store
from subscribers.tokens import Tokens, load_keys

__all__ = ["CSP", "CSRF_MAX_AGE", "DONE", "KEEP_ALIVE", "MAX_BODY", "MAX_CONNECTIONS", "MAX_REQUEST_HEAD", "NOTICES",
           "ONE_CLICK", "PRIVATE", "REQUEST_TIMEOUT", "SECURITY_HEADERS", "FormGuard", "GuardedH11Protocol", "Site",
           "create_app", "mask", "prefix_of", "redact", "uvicorn_options"]


def create_app(settings: Settings, store: Store | None = None, request_timeout: float = REQUEST_TIMEOUT) -> Starlette:
    """The application for `settings`, on its store (opened from `subscribers.database` if None);
    a request body must arrive within `request_timeout` seconds."""
    keys, current = load_keys(settings.secret_file)
    tokens = Tokens(keys, current, settings.newsletter.list_id)
    owned = store is None
    if store is None:
        store = Store.open(settings.database)
    store.with_keys(keys, current)  # erasures and the sign-up limits are keyed hashes
    site = Site(settings, store, tokens, FormGuard(keys, current, settings.newsletter.list_id))
    token = "/{token:str}"
    routes: list[BaseRoute] = [
        Route("/", site.index, methods=["GET"]),
        Route("/archive", site.index, methods=["GET"]),
        Route("/archive/", site.index, methods=["GET"]),
        Route("/archive/feed.xml", _feed(Feed(settings)), methods=["GET"]),
        Route("/archive/{name:str}", site.edition, methods=["GET"]),
        Route("/static/digest.css", site.stylesheet, methods=["GET"]),
        Route("/healthz", site.health, methods=["GET"]),
        Route("/unsubscribe" + token, site.unsubscribe, methods=["GET", "POST"]),
        Route("/preferences" + token, site.preferences, methods=["GET", "POST"]),
    ]
    if settings.signup.enabled:
        desk = SignupDesk(site, Mailer(settings))
        routes += [Route("/subscribe", desk.subscribe, methods=["GET", "POST"]),
                   Route("/subscribe/confirm" + token, desk.confirm, methods=["GET", "POST"])]
    # No trailing-slash redirects: a redirect built from the request is how open redirects start.
    inner = Router(routes, redirect_slashes=False)
    if site.prefix:
        routes = [Route(site.prefix, site.index, methods=["GET"]), Mount(site.prefix, app=inner)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        purging = asyncio.create_task(_purge_signups(store)) if settings.signup.enabled else None
        yield
        if purging is not None:
            purging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purging
        if owned:
            store.engine.dispose()

    app = Starlette(
        routes=routes,
        middleware=[_middleware(site.prefix, request_timeout)],
        exception_handlers={HTTPException: site.http_error, 500: site.server_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.site = site
    return app


PURGE_EVERY = 600.0  # seconds between two removals of expired sign-ups


async def _purge_signups(store: Store) -> None:
    """Expired sign-ups, and the pending readers they leave, removed now and every PURGE_EVERY seconds."""
    log = logging.getLogger("digest.serve")
    while True:
        try:
            removed = await run_in_threadpool(store.purge_signups)
        except Exception as exc:  # noqa: BLE001 — a busy or unreachable database: next time
            log.warning("expired sign-ups not removed: %s", str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
        else:
            if removed:
                log.info("%d pending sign-up(s) expired: removed", removed)
        await asyncio.sleep(PURGE_EVERY)


def _feed(feed: Feed) -> Callable[[Request], Awaitable[Response]]:
    async def atom(request: Request) -> Response:
        body, etag = await run_in_threadpool(feed.atom)
        headers = {"Cache-Control": "public, max-age=300", "ETag": etag}
        if etag in request.headers.get("if-none-match", ""):  # a feed reader that has it already
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/atom+xml; charset=utf-8", headers=headers)
    return atom


def _middleware(prefix: str, request_timeout: float) -> Middleware:
    return Middleware(Guard, prefix=prefix, request_timeout=request_timeout)
