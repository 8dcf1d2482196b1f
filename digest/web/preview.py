"""`digest preview`: the edition as readers will see it, for editors, reloading itself on every change.

One page: the email at 375 px and at 600 px side by side, the text twin, subject, preheader, size
against the budget and the checks, with a selector for the variant (language, rubrics). A watcher
(watchfiles) follows digest.toml, the theme, the built-in templates and every local source file;
a change rebuilds the edition on the next request and tells open pages to reload (server-sent events).
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import uvicorn
from babel.numbers import format_decimal, format_percent
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from watchfiles import awatch

from digest.core import config
from digest.core.config import Settings
from digest.core.errors import DigestError
from digest.core.locales import for_reader
from digest.core.model import Rendered, Variant
from digest.pipeline import edition as pipeline
from digest.pipeline import i18n
from digest.pipeline.render import Renderer
from digest.web import checks

# The preview page runs one script of its own (for reloading); the email inside its frame runs none.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src https: data:; "
            "frame-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
EMAIL_CSP = "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'self'"
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}

RELOAD_JS = """// Reload the preview when digest says the edition changed (server-sent events).
const source = new EventSource("events");
let seen = null;
source.onmessage = (event) => {
  if (seen !== null && event.data !== seen) { window.location.reload(); }
  seen = event.data;
};
"""


@dataclass(frozen=True)
class Made:
    """One version of the preview: the settings read, the day's edition and its renderer."""

    settings: Settings
    day: pipeline.DayEdition
    renderer: Renderer


@dataclass
class State:
    """What the preview shows, rebuilt after a change (version counts the changes). What was made
    stays until the next change; a str stands for what could not be made, and says why."""

    config_path: Path | None
    day_option: str | None
    timezone: str | None
    version: int = 0
    _made_once: Made | str | None = None
    _renders: dict[Variant, Rendered | str] = field(default_factory=dict)
    _page_env: jinja2.Environment | None = None
    # The page and its two frames arrive together: one of them builds, the others wait for it.
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def load(self) -> Settings:
        settings = config.load(self.config_path) if self.config_path else config.defaults()
        return config.with_overrides(settings, timezone=self.timezone)

    def bump(self) -> None:
        with self._lock:
            self.version += 1
            self._made_once, self._page_env = None, None
            self._renders.clear()
        i18n.translations.cache_clear()  # a .po file may be what changed

    def made(self) -> Made | str:
        """Settings, the edition and its renderer, made once per version (or why they could not be)."""
        with self._lock:
            return self._made()

    def _made(self) -> Made | str:
        if self._made_once is None:
            try:
                settings = self.load()
                day = config.edition_day(self.day_option, settings)
                self._made_once = Made(settings, pipeline.prepare(settings, day), Renderer(settings))
            except DigestError as exc:
                self._made_once = str(exc)
        return self._made_once

    def render(self, variant: Variant) -> Rendered | str:
        """The variant rendered, once per version (or why it could not be)."""
        with self._lock:
            return self._render(variant)

    def _render(self, variant: Variant) -> Rendered | str:
        if variant not in self._renders:
            made = self._made()
            if isinstance(made, str):
                self._renders[variant] = made
            else:
                try:
                    self._renders[variant] = made.renderer.render(made.day.edition, variant)
                except DigestError as exc:
                    self._renders[variant] = str(exc)
        return self._renders[variant]

    def page_environment(self, settings: Settings) -> jinja2.Environment:
        """The preview page's own templates and strings, made afresh after each change."""
        with self._lock:
            if self._page_env is None:
                self._page_env = i18n.environment(settings.theme, settings.newsletter.locale)
            return self._page_env

    def watched(self) -> list[Path]:
        """digest.toml, the theme and built-in templates, and every local source file."""
        paths = [i18n.builtin_templates()]
        if self.config_path:
            paths.append(self.config_path)
        try:
            settings = self.load()
        except DigestError:
            return paths
        if settings.theme:
            paths.append(settings.theme)
        paths += [Path(s.location) for s in settings.sources if not s.is_url]
        return [p for p in paths if p.exists()]


def _variant(request: Request, settings: Settings) -> Variant:
    locale = for_reader(request.query_params.get("locale"), settings.newsletter.locale)
    known = {r.key for r in settings.rubrics}
    chosen = frozenset(r for r in request.query_params.getlist("rubric") if r in known)
    return Variant(locale, chosen or None)


def _headers(csp: str) -> dict[str, str]:
    return {**_HEADERS, "Content-Security-Policy": csp}


class PreviewPages:
    """The routes of the preview, over one State. The page and the email are sync: Starlette runs
    them in a thread, and gathering runs its own event loop."""

    def __init__(self, state: State) -> None:
        self.state = state

    def page(self, request: Request) -> Response:
        made = self.state.made()
        if isinstance(made, str):
            return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>digest preview</title><pre>{_escape(made)}</pre>"
                                "<script src=\"preview.js\"></script>", status_code=500, headers=_headers(PAGE_CSP))
        settings = made.settings
        variant = _variant(request, settings)
        result = self.state.render(variant)
        rendered, error = (None, result) if isinstance(result, str) else (result, None)
        locale = settings.newsletter.locale
        results = checks.run(rendered, settings.layout.budget_bytes, locale) if rendered else []
        query = str(request.url.query)
        html = self.state.page_environment(settings).get_template("preview/index.html.j2").render(
            settings=settings,
            edition=made.day.edition,
            variant=variant,
            rendered=rendered,
            error=error,
            checks=results,
            failed=[c for c in results if not c.ok],
            budget=settings.layout.budget_bytes,
            date_long=i18n.long_date(made.day.edition.date, locale),
            locales=config.LOCALES,
            rubrics=[(r.key, r.label_for(locale)) for r in settings.rubrics],
            email_url="email.html" + (f"?{query}" if query else ""),
            version=self.state.version,
            size_text=_size_text(rendered.html_bytes, settings.layout.budget_bytes, locale) if rendered else "",
        )
        return HTMLResponse(html, headers=_headers(PAGE_CSP))

    def email(self, request: Request) -> Response:
        made = self.state.made()
        if isinstance(made, str):
            return PlainTextResponse(made, status_code=500, headers=_headers(EMAIL_CSP))
        rendered = self.state.render(_variant(request, made.settings))
        if isinstance(rendered, str):
            return PlainTextResponse(rendered, status_code=500, headers=_headers(EMAIL_CSP))
        return HTMLResponse(rendered.html, headers=_headers(EMAIL_CSP))

    def text(self, request: Request) -> Response:
        made = self.state.made()
        shown = made if isinstance(made, str) else self.state.render(_variant(request, made.settings))
        return PlainTextResponse(shown if isinstance(shown, str) else shown.text, headers=_headers(EMAIL_CSP))

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": self.state.version}, headers=_HEADERS)

    async def script(self, request: Request) -> Response:
        return Response(RELOAD_JS, media_type="text/javascript", headers=_HEADERS)

    async def events(self, request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            last, quiet = None, 0.0
            while not await request.is_disconnected():
                if self.state.version != last:
                    last, quiet = self.state.version, 0.0
                    yield f"data: {last}\n\n"
                elif quiet >= 15:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(0.2)  # a version number to compare: cheap enough to poll
                quiet += 0.2

        return StreamingResponse(stream(), media_type="text/event-stream", headers=_HEADERS)

    async def watch(self) -> None:
        # Editors save by writing a new file and renaming it over the old one, which ends a watch on
        # the file itself: watch the folders, and keep the changes to the watched paths.
        paths = [p.resolve() for p in self.state.watched()]
        folders = sorted({p if p.is_dir() else p.parent for p in paths})
        trees = [p for p in paths if p.is_dir()]
        files = {p for p in paths if not p.is_dir()}

        def wanted(_change: object, path: str) -> bool:
            target = Path(path).resolve()
            return target in files or any(target.is_relative_to(tree) for tree in trees)

        async for _ in awatch(*folders, watch_filter=wanted, debounce=200, step=50, rust_timeout=500):
            self.state.bump()


def _size_text(size: int, budget: int, locale: str) -> str:
    return (f"{format_decimal(size, locale=locale)} / {format_decimal(budget, locale=locale)} "
            f"({format_percent(size / budget, locale=locale)})")


def create_app(state: State, host: str = "127.0.0.1") -> Starlette:
    pages = PreviewPages(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watcher = asyncio.create_task(pages.watch())
        try:
            yield
        finally:
            watcher.cancel()

    routes = [
        Route("/", pages.page),
        Route("/email.html", pages.email),
        Route("/email.txt", pages.text),
        Route("/version", pages.version),
        Route("/events", pages.events),
        Route("/preview.js", pages.script),
    ]
    # Only this machine's names: a page elsewhere cannot rebind a domain to 127.0.0.1 and read
    # unpublished editions through the reader's browser.
    hosts = sorted({host, "127.0.0.1", "localhost", "[::1]"})
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def serve(state: State, host: str, port: int) -> None:
    uvicorn.run(create_app(state, host), host=host, port=port, log_level="info", access_log=True)


