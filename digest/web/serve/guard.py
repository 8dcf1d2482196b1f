"""Around every request of `digest serve`: the security headers, the limits of a public port, and one log
line per request with no token and no control character in it."""
from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote, urlsplit

import anyio
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
# A segment with such a run may be a token (44 characters of this alphabet), wherever it is.
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_-]{20,}")
_TOKEN_ROUTES = ("unsubscribe", "preferences", "confirm")
# RFC 3986 path characters, logged as they are; everything else is percent-encoded.
_PATH_CHARS = "/!$&'()*+,;=:@-._~"
REDACTED = "…"
MAX_LOGGED_PATH = 300



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


def prefix_of(base_url: str) -> str:
    """The path the app lives under: "/digest" for https://example.ma/digest, "" for the root."""
    return urlsplit(base_url).path.rstrip("/")


class Guard:
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
