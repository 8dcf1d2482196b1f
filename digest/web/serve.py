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

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import replace as _replace
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import h11
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from digest.core.config import LOCALES, Settings
from digest.pipeline import archive, i18n
from subscribers.store import Store
from subscribers.tokens import Tokens, load_keys

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
# Request line and headers: what nginx allows by default (4 × 8 KiB), since the browser sends every
# cookie of the newsroom's domain along, and a news site's cookies can be many.
MAX_REQUEST_HEAD = 32 * 1024
REQUEST_TIMEOUT = 10.0  # seconds for a request to arrive whole; a few hundred bytes, even on a poor line
KEEP_ALIVE = 5  # seconds an idle connection is kept after an answer (uvicorn's default)
MAX_CONNECTIONS = 200  # far above what a newsletter's links bring, far below a process's descriptors
CLIENT_GONE = 499  # in the log (nginx's code): the client left before its request was read whole
CLOSE = {"Connection": "close"}  # after a refusal, no keep-alive: the rest of the request is not read
CSRF_MAX_AGE = 24 * 3600  # a preferences page left open for a day still saves
ONE_CLICK = ("List-Unsubscribe", "One-Click")
# A segment with such a run may be a token (44 characters of this alphabet), wherever it is.
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_-]{20,}")
_TOKEN_ROUTES = ("unsubscribe", "preferences")
# RFC 3986 path characters, logged as they are; everything else is percent-encoded.
_PATH_CHARS = "/!$&'()*+,;=:@-._~"
REDACTED = "…"
MAX_LOGGED_PATH = 300

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


def redact(path: str, prefix: str = "") -> str:
    """The request path as the log shows it: never a token, never a control character.

    A token is a credential, so it is never written down: a segment holding a token-like run (20 or
    more of [A-Za-z0-9_-]) is cut, wherever it is, and so is everything after a segment that says
    unsubscribe or preferences, in any case. The newsletter's own path prefix is kept as it is.
    Every character but the RFC 3986 path characters is percent-encoded (control characters, NUL,
    ESC, white space, quotes, backslash, `%` itself, anything beyond ASCII), so a request can write
    neither a line, nor a colour, nor a lookalike into the log, and the line reads as a URL.
    """
    own = bool(prefix) and (path == prefix or path.startswith(prefix + "/"))
    head, rest = (prefix, path[len(prefix):]) if own else ("", path)
    segments = rest.split("/")
    shown = []
    for i, segment in enumerate(segments):
        shown.append(REDACTED if _TOKEN_RUN.search(segment) else _escape(segment))
        if i + 1 < len(segments) and any(route in segment.casefold() for route in _TOKEN_ROUTES):
            shown.append(REDACTED)
            break
    text = _escape(head) + "/".join(shown)
    if len(text) > MAX_LOGGED_PATH:
        cut = text[:MAX_LOGGED_PATH]
        if "%" in cut[-2:]:  # not half an escape
            cut = cut[:cut.rindex("%")]
        text = cut + REDACTED
    return text


def _escape(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe=_PATH_CHARS)


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
    otherwise, caps on the request's head and body, a deadline for the body, and one log line with
    the token cut out of the path."""

    def __init__(self, app: ASGIApp, prefix: str = "", max_body: int = MAX_BODY,
                 max_head: int = MAX_REQUEST_HEAD, request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.app = app
        self.prefix = prefix
        self.max_body = max_body
        self.max_head = max_head
        self.request_timeout = request_timeout

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

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_secured)
                return
            await self.app(scope, self._capped(receive), send_secured)
        except ClientDisconnect:
            # Gone before its body was read whole (closed, reset, or cut off by the protocol): no one
            # to answer, nothing changed, and one line in the log rather than a traceback.
            status = CLIENT_GONE
        finally:
            log.info("%s %s %d %.0f ms", _escape(scope["method"]), redact(scope["path"], self.prefix), status,
                     (time.perf_counter() - started) * 1000)

    def _refusal(self, scope: Scope) -> Response | None:
        """The answer to a request refused on its head alone, before a byte of its body is read."""
        headers = scope["headers"]
        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
        head += sum(len(name) + len(value) + 4 for name, value in headers)
        if head > self.max_head:
            # h11 refuses a longer head only while it comes in pieces; one read can hold more.
            return PlainTextResponse("Request header fields too large\n", status_code=431, headers=CLOSE)
        length = dict(headers).get(b"content-length", b"0")
        if not length.isdigit():
            return PlainTextResponse("Bad request\n", status_code=400, headers=CLOSE)
        if len(length) > 12 or int(length) > self.max_body:  # int() of 5000 digits raises
            return PlainTextResponse("Request too large\n", status_code=413, headers=CLOSE)
        return None

    def _capped(self, receive: Receive) -> Receive:
        """`receive` with the body capped at max_body and due within request_timeout of the head."""
        received = 0
        deadline = anyio.current_time() + self.request_timeout

        async def receive_capped() -> Message:
            nonlocal received
            try:
                with anyio.fail_after(max(deadline - anyio.current_time(), 0)):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, headers=CLOSE) from None
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise HTTPException(413, headers=CLOSE)
            return message

        return receive_capped


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11) with the deadlines uvicorn lacks, and a cap on connections.

    uvicorn (checked with 0.54) closes a connection left idle after an answer (timeout_keep_alive),
    but never one that sends nothing, half a request line or half its headers, nor one whose client
    stops reading its answer: on a public port such connections pile up until the process has no file
    descriptor left. Here:
      - a request's head must arrive whole within `request_timeout` of the connection opening or of
        the previous answer (a byte at a time does not extend it), and so must the rest of a body
        the application did not read; else the connection is closed. A body the application reads
        has the same deadline in _Guard, which answers 408;
      - a client that takes in nothing of its answer for `request_timeout` is dropped;
      - beyond `max_connections` open connections, a new one is closed as soon as it is accepted
        (and at `max_connections`, uvicorn's limit_concurrency answers 503).
    """

    request_timeout: float = REQUEST_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    refusal_logged_at: float = -math.inf  # per server class: the warning is said once a minute at most

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._stall: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse()
            return
        self._watch(fresh=True)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch(fresh=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel("_deadline")
        self._cancel("_stall")
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = self.loop.call_later(self.request_timeout, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel("_stall")

    def _awaiting_client(self) -> bool:
        """Waiting on the client: for a request's head, or for the rest of a body already answered."""
        if self.transport.is_closing():
            return False
        state = self.conn.their_state
        answered = self.cycle is None or self.cycle.response_complete
        return state is h11.IDLE or (state is h11.SEND_BODY and answered)

    def _watch(self, fresh: bool = False) -> None:
        if fresh or not self._awaiting_client():
            self._cancel("_deadline")
        if self._deadline is None and self._awaiting_client():
            self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _cancel(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()  # nothing to log: browsers open connections they never use

    def _stalled(self) -> None:
        self._stall = None
        log.warning("a client stopped reading its answer for %g s: connection dropped", self.request_timeout)
        self.transport.abort()  # close() would wait for the buffer to drain, which it never will

    def _refuse(self) -> None:
        cls = type(self)
        now = self.loop.time()
        if now - cls.refusal_logged_at >= 60:
            cls.refusal_logged_at = now
            log.warning("connection limit (%d) reached: new connections are closed at once "
                        "(said once a minute at most)", self.max_connections)
        self.transport.close()


def uvicorn_options(request_timeout: float = REQUEST_TIMEOUT, max_connections: int = MAX_CONNECTIONS) -> dict:
    """The keyword arguments of uvicorn.run that set digest's limits (see GuardedH11Protocol)."""
    protocol = type("DigestH11Protocol", (GuardedH11Protocol,), {
        "request_timeout": request_timeout, "max_connections": max_connections, "refusal_logged_at": -math.inf,
    })
    return {
        "http": protocol,
        "ws": "none",  # no route speaks WebSocket: no upgrade either
        "limit_concurrency": max_connections,
        "timeout_keep_alive": KEEP_ALIVE,
        "h11_max_incomplete_event_size": MAX_REQUEST_HEAD,
    }


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
    """RFC 8058: the body is List-Unsubscribe=One-Click, urlencoded or as a multipart/form-data
    field; with no or another content type, the bare body must be exactly that (module docstring)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form(max_files=0, max_fields=16, max_part_size=1024)
        return form.get(ONE_CLICK[0]) == ONE_CLICK[1]
    return (await request.body()).strip() == f"{ONE_CLICK[0]}={ONE_CLICK[1]}".encode()


def create_app(settings: Settings, store=None, request_timeout: float = REQUEST_TIMEOUT) -> Starlette:
    """The application for `settings`, on its store (opened from `subscribers.database` if None);
    a request body must arrive within `request_timeout` seconds."""
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
        middleware=[_middleware(site.prefix, request_timeout)],
        exception_handlers={HTTPException: site.http_error, 500: site.server_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.site = site
    return app


def _middleware(prefix: str, request_timeout: float):
    return Middleware(_Guard, prefix=prefix, request_timeout=request_timeout)
