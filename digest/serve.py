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
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import replace as _replace
from email.utils import formatdate
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import archive, i18n
from .settings import LOCALES, Settings

log = logging.getLogger("digest.serve")

# No script at all (default-src 'none' covers it), styles only from our stylesheet, images over
# https (a lead story's photo), forms only to ourselves, never framed, no <base> tricks.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' https:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a token page's URL never leaves in a Referer
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}  # pages opened with a token
MAX_BODY = 16 * 1024  # the largest form is a few hundred bytes
CSRF_MAX_AGE = 24 * 3600  # a preferences page left open for a day still saves
ONE_CLICK = ("List-Unsubscribe", "One-Click")
_TOKEN_IN_PATH = re.compile(r"/(unsubscribe|preferences)/.*", re.S)

# What the pages say besides their templates: English msgids of templates/locale/*/digest.po.
NOTICES = {  # (title, message)
    "invalid_link": ("This link is not valid",
                     "It may be incomplete: copy the whole link from the email, or use the link in a more recent email."),
    "no_edition": ("Page not found", "There is no edition at this address."),
    "not_found": ("Page not found", "There is no page at this address."),
    "bad_request": ("Something is wrong with this request", "Check the address, or open the link in the email again."),
    "not_one_click": ("Something is wrong with this request",
                      "The unsubscribe button sends List-Unsubscribe=One-Click; this request did not."),
    "expired": ("This form has expired", "Open the link in the email again and make your choice once more."),
}
DONE = {  # after a preferences form is sent, by its action
    "save": "Your preferences are saved.",
    "resubscribe": "You are subscribed again.",
    "unsubscribe": "You are unsubscribed",
}


def redact(path: str) -> str:
    """The path as the log shows it: a token is a credential, so it is never written down."""
    return _TOKEN_IN_PATH.sub(lambda m: f"/{m.group(1)}/…", path)


def mask(address: str) -> str:
    """salma.alaoui@example.ma → sa…@example.ma: enough for readers to recognise their address,
    not enough to harvest it from a forwarded link."""
    local, _, domain = address.partition("@")
    return f"{local[:2] if len(local) > 2 else local[:1]}…@{domain}"


def prefix_of(base_url: str) -> str:
    """The path the app lives under: "/digest" for https://example.ma/digest, "" for the root."""
    return urlsplit(base_url).path.rstrip("/")


class FormGuard:
    """CSRF tokens for the preferences form, bound to the subscriber's link token.

    A form token is `vv tttttttttt mac`: the key version, the time it was issued (hex seconds) and
    HMAC-SHA256 over (version, time, list id, link token) with a key derived from the signing key
    of that version, so a form token is never a valid link token and vice versa. A POST must carry
    one made for the same link token, less than CSRF_MAX_AGE old: a page on another site cannot
    read ours (same-origin policy, no CORS), so it cannot get one. Stateless: no cookie, no session.
    """

    def __init__(self, keys: Mapping[int, bytes], current: int, list_id: str, max_age: int = CSRF_MAX_AGE) -> None:
        self._keys = {v: hmac.new(k, b"digest/csrf/v1", hashlib.sha256).digest() for v, k in keys.items()}
        self.current = current
        self.list_id = list_id
        self.max_age = max_age

    def make(self, link_token: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        head = f"{self.current:02x}{issued:010x}"
        return head + self._mac(self.current, issued, link_token)

    def check(self, link_token: str, value: object, now: float | None = None) -> bool:
        if not isinstance(value, str) or not 13 <= len(value) <= 100 or not value.isascii():
            return False
        try:
            version, issued = int(value[:2], 16), int(value[2:12], 16)
        except ValueError:
            return False
        if version not in self._keys:
            return False
        age = (time.time() if now is None else now) - issued
        if not -60 <= age <= self.max_age:  # a minute of clock skew between workers
            return False
        return hmac.compare_digest(self._mac(version, issued, link_token), value[12:])

    def _mac(self, version: int, issued: int, link_token: str) -> str:
        message = f"{version}:{issued}:{self.list_id}:{link_token}".encode()
        digest = hmac.new(self._keys[version], message, hashlib.sha256).digest()[:24]
        return base64.urlsafe_b64encode(digest).decode("ascii")


class _Guard:
    """Around every request: security headers on every response, `no-store` unless a route says
    otherwise, a cap on request bodies, and one log line with the token cut out of the path."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_secured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        received = 0

        async def receive_capped() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise HTTPException(413)
            return message

        try:
            length = dict(scope["headers"]).get(b"content-length", b"0")
            if not length.isdigit() or int(length) > self.max_body:
                too_large = length.isdigit()
                response = PlainTextResponse("Request too large\n" if too_large else "Bad request\n",
                                             status_code=413 if too_large else 400)
                await response(scope, receive, send_secured)
                return
            await self.app(scope, receive_capped, send_secured)
        finally:
            log.info("%s %s %d %.0f ms", scope["method"], redact(scope["path"]), status,
                     (time.perf_counter() - started) * 1000)


class Site:
    """The routes' state: settings, store, token checks, and the pages they render."""

    def __init__(self, settings: Settings, store, tokens, guard: FormGuard) -> None:
        self.settings = settings
        self.store = store
        self.tokens = tokens
        self.guard = guard
        self.prefix = prefix_of(settings.newsletter.base_url)
        self.known = [r.key for r in settings.rubrics]
        self.css = archive.stylesheet(settings)
        news = settings.newsletter
        parts = urlsplit(news.base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"

    # -- pages ----------------------------------------------------------------------------------
    def _t(self, locale: str, text: str) -> str:
        return i18n.translations(locale, self.settings.theme).gettext(text)

    def page(self, name: str, locale: str, status: int = 200, private: bool = False, **context) -> HTMLResponse:
        html = archive.render_page(
            self.settings, name, locale, private=private,
            css_href=f"{self.prefix}/static/digest.css", index_href=f"{self.prefix}/archive/", **context,
        )
        return HTMLResponse(html, status_code=status, headers=PRIVATE if private else None)

    def notice(self, status: int, key: str, locale: str | None = None,
               headers: Mapping[str, str] | None = None) -> HTMLResponse:
        locale = locale or self.settings.newsletter.locale
        title, message = NOTICES[key]
        response = self.page("notice.html.j2", locale, status, private=True,
                             title=self._t(locale, title), message=self._t(locale, message))
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    def invalid_link(self) -> HTMLResponse:
        return self.notice(404, "invalid_link")

    # -- archive ------------------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        locale = self.settings.newsletter.locale
        days = archive.editions(self.settings.archive)
        editions = [{"date": d, "label": i18n.long_date(d, locale), "href": f"{self.prefix}/archive/{d.isoformat()}.html"}
                    for d in days]
        response = self.page("index.html.j2", locale, editions=editions)
        response.headers["Cache-Control"] = "public, max-age=60"
        return response

    async def edition(self, request: Request) -> Response:
        page = await run_in_threadpool(archive.read_page, self.settings.archive, request.path_params["name"])
        if page is None:  # missing, or not a regular file of the folder: the same answer
            return self.notice(404, "no_edition")
        return Response(page.body, media_type="text/html; charset=utf-8", headers={
            "Cache-Control": "public, max-age=300", "ETag": page.etag,
            "Last-Modified": formatdate(page.modified, usegmt=True),
        })

    async def stylesheet(self, request: Request) -> Response:
        return Response(self.css, media_type="text/css; charset=utf-8", headers={"Cache-Control": "public, max-age=3600"})

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")

    # -- unsubscribe ----------------------------------------------------------------------------
    async def unsubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        subscriber_id = self.tokens.verify(token)
        if subscriber_id is None:
            return self.invalid_link()
        if request.method == "POST":
            if not await _is_one_click(request):
                return self.notice(400, "not_one_click")
            subscriber = await run_in_threadpool(self.store.get_by_id, subscriber_id)
            if subscriber is not None and subscriber.status == "active":
                # Idempotent: a second click, or a mail app's retry, finds them unsubscribed already.
                if await run_in_threadpool(self.store.unsubscribe, subscriber_id):
                    log.info("subscriber %d unsubscribed (one-click)", subscriber_id)
                subscriber = _replace(subscriber, status="unsubscribed")
            return self._unsubscribe_page(token, subscriber)
        subscriber = await run_in_threadpool(self.store.get_by_id, subscriber_id)
        return self._unsubscribe_page(token, subscriber)

    def _unsubscribe_page(self, token: str, subscriber) -> Response:
        locale = subscriber.locale if subscriber else self.settings.newsletter.locale
        if subscriber is None:
            state = "done"
        elif subscriber.status == "active":
            state = "confirm"
        elif subscriber.status == "bounced":
            state = "inactive"
        else:
            state = "done"
        return self.page(
            "unsubscribe.html.j2", locale, private=True, state=state,
            address=mask(subscriber.email) if subscriber else "",
            action=f"{self.prefix}/unsubscribe/{token}",
            preferences_href=f"{self.prefix}/preferences/{token}",
        )

    # -- preferences ----------------------------------------------------------------------------
    def _verify_any(self, token: str) -> int | None:
        # The email's single token is an "unsubscribe" one; a "preferences" token works too, should
        # a theme ever carry one.
        return self.tokens.verify(token) or self.tokens.verify(token, "preferences")

    async def preferences(self, request: Request) -> Response:
        token = request.path_params["token"]
        subscriber_id = self._verify_any(token)
        if subscriber_id is None:
            return self.invalid_link()
        subscriber = await run_in_threadpool(self.store.get_by_id, subscriber_id)
        if subscriber is None:
            return self.invalid_link()
        if request.method != "POST":
            return self._preferences_page(token, subscriber)

        if not self._same_origin(request):
            return self._expired(subscriber.locale)
        form = await request.form(max_files=0, max_fields=64, max_part_size=4096)
        if not self.guard.check(token, form.get("csrf")):
            return self._expired(subscriber.locale)
        action = form.get("action", "save")
        locale = form.get("locale", subscriber.locale)
        chosen = form.getlist("rubric")
        if (action not in ("save", "resubscribe", "unsubscribe") or locale not in LOCALES
                or not all(isinstance(k, str) and k in self.known for k in chosen)
                or (action == "resubscribe" and subscriber.status == "bounced")):
            return self._preferences_page(token, subscriber, status=400,
                                          error=self._t(subscriber.locale, NOTICES["bad_request"][0]))
        if await run_in_threadpool(self._apply, subscriber, action, locale, frozenset(chosen)):
            log.info("subscriber %d %s (preferences page)", subscriber_id,
                     "unsubscribed" if action == "unsubscribe" else "subscribed again")
        subscriber = await run_in_threadpool(self.store.get_by_id, subscriber_id)
        return self._preferences_page(token, subscriber, notice=self._t(subscriber.locale, DONE[action]))

    def _apply(self, subscriber, action: str, locale: str, rubrics: frozenset[str]) -> bool:
        """One transaction; True when the subscription itself changed."""
        with self.store.bulk() as tx:
            if action == "unsubscribe":
                return tx.unsubscribe(subscriber.id)
            tx.upsert(subscriber.email, locale=locale, rubrics=rubrics)
            if action == "resubscribe" and subscriber.status == "unsubscribed":
                return tx.set_status(subscriber.id, "active")
        return False

    def _same_origin(self, request: Request) -> bool:
        """Defence in depth beside the CSRF token: a browser says where a POST comes from.

        With `Referrer-Policy: no-referrer` browsers send `Origin: null` even for our own form, so
        "null" proves nothing either way; Sec-Fetch-Site (every current browser) then decides, and
        without it (older browsers, other clients) the CSRF token alone does.
        """
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return True
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        return origin in (self.origin, own)

    def _expired(self, locale: str) -> Response:
        return self.notice(403, "expired", locale)

    def _preferences_page(self, token: str, subscriber, status: int = 200, notice: str = "", error: str = "") -> Response:
        locale = subscriber.locale if subscriber.locale in LOCALES else self.settings.newsletter.locale
        rubrics = [{"key": r.key, "label": r.label_for(locale)} for r in self.settings.rubrics]
        return self.page(
            "preferences.html.j2", locale, status, private=True,
            address=mask(subscriber.email), subscription=subscriber.status, chosen_locale=locale,
            languages=[(code, archive.language_name(code)) for code in LOCALES],
            rubrics=rubrics, chosen=subscriber.rubrics,
            csrf=self.guard.make(token), action=f"{self.prefix}/preferences/{token}",
            notice=notice, error=error,
        )

    # -- errors -----------------------------------------------------------------------------------
    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self.notice(exc.status_code, "not_found" if exc.status_code == 404 else "bad_request", headers=exc.headers)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        # Sent by Starlette's outermost middleware, around our _Guard: the headers are set here.
        return PlainTextResponse("Internal server error\n", status_code=500, headers={**SECURITY_HEADERS, **PRIVATE})


async def _is_one_click(request: Request) -> bool:
    """RFC 8058: the body is List-Unsubscribe=One-Click, as multipart/form-data or urlencoded."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form(max_files=0, max_fields=16, max_part_size=1024)
        return form.get(ONE_CLICK[0]) == ONE_CLICK[1]
    return (await request.body()).strip() == f"{ONE_CLICK[0]}={ONE_CLICK[1]}".encode()


def create_app(settings: Settings, store=None) -> Starlette:
    """The application for `settings`, on its store (opened from `subscribers.database` if None)."""
    from subscribers.store import Store
    from subscribers.tokens import Tokens, load_keys

    keys, current = load_keys(settings.secret_file)
    tokens = Tokens(keys, current, settings.newsletter.list_id)
    owned = store is None
    if store is None:
        store = Store.open(settings.database)
    site = Site(settings, store, tokens, FormGuard(keys, current, settings.newsletter.list_id))
    token = "/{token:str}"
    routes = [
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
    async def lifespan(app):
        yield
        if owned:
            store.engine.dispose()

    app = Starlette(
        routes=routes,
        middleware=[_middleware()],
        exception_handlers={HTTPException: site.http_error, 500: site.server_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.site = site
    return app


def _middleware():
    from starlette.middleware import Middleware

    return Middleware(_Guard)
