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

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route, Router

from digest.core.config import Settings
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
    site = Site(settings, store, tokens, FormGuard(keys, current, settings.newsletter.list_id))
    token = "/{token:str}"
    routes: list[BaseRoute] = [
        Route("/", site.index, methods=["GET"]),
        Route("/archive", site.index, methods=["GET"]),
        Route("/archive/", site.index, methods=["GET"]),
        Route("/archive/{name:str}", site.edition, methods=["GET"]),
        Route("/static/digest.css", site.stylesheet, methods=["GET"]),
        Route("/healthz", site.health, methods=["GET"]),
        Route("/unsubscribe" + token, site.unsubscribe, methods=["GET", "POST"]),
        Route("/preferences" + token, site.preferences, methods=["GET", "POST"]),
    ]
    # No trailing-slash redirects: a redirect built from the request is how open redirects start.
    inner = Router(routes, redirect_slashes=False)
    if site.prefix:
        routes = [Route(site.prefix, site.index, methods=["GET"]), Mount(site.prefix, app=inner)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
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


def _middleware(prefix: str, request_timeout: float) -> Middleware:
    return Middleware(Guard, prefix=prefix, request_timeout=request_timeout)
