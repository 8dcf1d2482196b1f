"""The pages of `digest serve`: the archive, one-click unsubscribe and the preferences form (with the
reader's data to download or erase). The sign-up form is digest.web.serve.signup's, on this Site."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace as _replace
from datetime import timedelta
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

from babel import Locale
from babel.core import get_global
from babel.dates import get_day_names
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from digest.core.config import LOCALES, Settings
from digest.core.config.model import WEEKDAYS
from digest.core.errors import InvalidSubscriber
from digest.pipeline import archive, i18n
from digest.web.serve import rights
from digest.web.serve.forms import FormGuard
from digest.web.serve.guard import PRIVATE, SECURITY_HEADERS, prefix_of
from subscribers.consent import Origin, network
from subscribers.model import ASAP, CADENCES, NEWSLETTER_HOUR, Subscriber
from subscribers.store import Store
from subscribers.tokens import Tokens
from subscribers.validate import check_delivery_time, weekday_name

log = logging.getLogger("digest.serve")
ONE_CLICK = ("List-Unsubscribe", "One-Click")

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
    "check_inbox": ("Check your inbox", "If this address can receive our emails, one is on its way with a link to "
                    "confirm your subscription. The link is valid for 48 hours; nothing else is sent until you confirm."),
    "confirm_gone": ("This link is no longer valid",
                     "It has been used already, or it has expired: sign up again to receive a new one."),
    "erased": ("Your data is erased", "You will receive no more emails from us. Thank you for having read us."),
}
# The hours the preferences page offers, in the reader's zone; the one they chose is added if not among them.
HOURS = tuple(f"{h:02d}:00" for h in range(24))
DONE = {  # after a preferences form is sent, by its action
    "save": "Your preferences are saved.",
    "resubscribe": "You are subscribed again.",
    "unsubscribe": "You are unsubscribed",
}


def mask(address: str) -> str:
    """salma.alaoui@example.ma → sa…@example.ma: enough for readers to recognise their address,
    not enough to harvest it from a forwarded link."""
    local, _, domain = address.partition("@")
    return f"{local[:2] if len(local) > 2 else local[:1]}…@{domain}"


class Site:
    """The routes' state: settings, store, token checks, and the pages they render."""

    def __init__(self, settings: Settings, store: Store, tokens: Tokens, guard: FormGuard) -> None:
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

    def page(self, name: str, locale: str, status: int = 200, private: bool = False, **context: Any) -> HTMLResponse:
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
        folder, theme = self.settings.archive, self.settings.theme
        editions = [{"date": d, "label": i18n.long_date(d, locale), "href": f"{self.prefix}/archive/{archive.page_name(d)}"}
                    for d in archive.editions(folder)]
        editions += [{"date": d, "label": i18n.week_title(d - timedelta(days=6), d, locale, theme),
                      "href": f"{self.prefix}/archive/{archive.page_name(d, weekly=True)}"}
                     for d in archive.editions(folder, weekly=True)]
        editions.sort(key=lambda e: (e["date"], e["href"]), reverse=True)
        subscribe = f"{self.prefix}/subscribe" if self.settings.signup.enabled else ""
        response = self.page("index.html.j2", locale, editions=editions, feed_href=f"{self.prefix}/archive/feed.xml",
                             subscribe_href=subscribe)
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
                if await run_in_threadpool(self.store.unsubscribe, subscriber_id, self.origin_of(request, "one-click")):
                    log.info("subscriber %d unsubscribed (one-click)", subscriber_id)
                subscriber = _replace(subscriber, status="unsubscribed")
            return self._unsubscribe_page(token, subscriber)
        subscriber = await run_in_threadpool(self.store.get_by_id, subscriber_id)
        return self._unsubscribe_page(token, subscriber)

    def _unsubscribe_page(self, token: str, subscriber: Subscriber | None) -> Response:
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
        if action in rights.ACTIONS:
            return await self._rights(request, token, subscriber, str(action))
        locale = form.get("locale", subscriber.locale)
        chosen = form.getlist("rubric")
        hour = _hour(form.get("hour"))  # None: not on the form (a theme's page without it), or no hour
        rhythm = read_rhythm(form.get("cadence"), form.get("weekday"))  # None: a value no form offers
        if (action not in ("save", "resubscribe", "unsubscribe") or locale not in LOCALES
                or not all(isinstance(k, str) and k in self.known for k in chosen)
                or (hour is None and form.get("hour") is not None) or rhythm is None
                or (action == "resubscribe" and subscriber.status == "bounced")):
            return self._preferences_page(token, subscriber, status=400,
                                          error=self._t(subscriber.locale, NOTICES["bad_request"][0]))
        rubrics = frozenset(k for k in chosen if isinstance(k, str))  # every one is (checked above)
        by = self.origin_of(request, "preferences")
        if await run_in_threadpool(self._apply, subscriber, action, locale, rubrics, hour, rhythm, by):
            log.info("subscriber %d %s (preferences page)", subscriber_id,
                     "unsubscribed" if action == "unsubscribe" else "subscribed again")
        subscriber = await run_in_threadpool(self.store.get_by_id, subscriber_id)
        if subscriber is None:  # removed meanwhile (`digest subscribers remove`): the link is no longer valid
            return self.invalid_link()
        return self._preferences_page(token, subscriber, notice=self._t(subscriber.locale, DONE[action]))

    def _apply(self, subscriber: Subscriber, action: str, locale: str, rubrics: frozenset[str], hour: str | None,
               rhythm: tuple[str | None, str | None], by: Origin) -> bool:
        """One transaction (and one consent row for what changed); True when the subscription itself changed."""
        with self.store.bulk() as tx:
            if action == "unsubscribe":
                return tx.unsubscribe(subscriber.id, by)
            tx.upsert(subscriber.email, locale=locale, rubrics=rubrics, delivery_time=hour, cadence=rhythm[0],
                      weekday=rhythm[1], by=by)
            if action == "resubscribe" and subscriber.status == "unsubscribed":
                return tx.set_status(subscriber.id, "active", by)
        return False

    def origin_of(self, request: Request, channel: str) -> Origin:
        """How a change came from this request, for the consent record: the page, the client's network
        (never its address) and its user agent."""
        path = {"one-click": "unsubscribe", "preferences": "preferences"}.get(channel, channel)
        return Origin(channel, f"{self.settings.newsletter.base_url}/{path}", None,
                      network(request.client.host if request.client else None), request.headers.get("user-agent"))

    async def _rights(self, request: Request, token: str, subscriber: Subscriber, action: str) -> Response:
        """Download my data (a JSON file); erase me: a confirmation step, then everything but a keyed hash goes."""
        if action == "download":
            payload = await run_in_threadpool(rights.data_of, self.store, self.settings, subscriber)
            log.info("subscriber %d downloaded their data (preferences page)", subscriber.id)
            return JSONResponse(payload, headers={**PRIVATE, "Content-Disposition": 'attachment; filename="my-data.json"'})
        if action == "erase":
            return self.page("erase.html.j2", subscriber.locale, private=True, address=mask(subscriber.email),
                             action=f"{self.prefix}/preferences/{token}", csrf=self.guard.make(token))
        await run_in_threadpool(self.store.erase, subscriber.email, self.origin_of(request, "preferences"))
        log.info("subscriber %d erased (preferences page)", subscriber.id)
        return self.notice(200, "erased", subscriber.locale)

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

    def _preferences_page(self, token: str, subscriber: Subscriber, status: int = 200, notice: str = "", error: str = "") -> Response:
        locale = subscriber.locale if subscriber.locale in LOCALES else self.settings.newsletter.locale
        rubrics = [{"key": r.key, "label": r.label_for(locale)} for r in self.settings.rubrics]
        hours = list(HOURS)
        own = subscriber.delivery_time
        if own is not None and own not in (ASAP, *HOURS):  # 06:45 from an import: offered, so a save keeps it
            hours = sorted([*hours, own])
        return self.page(
            "preferences.html.j2", locale, status, private=True,
            address=mask(subscriber.email), subscription=subscriber.status, chosen_locale=locale,
            languages=[(code, archive.language_name(code)) for code in LOCALES],
            rubrics=rubrics, chosen=subscriber.rubrics,
            hours=hours, chosen_hour=subscriber.delivery_time or NEWSLETTER_HOUR, asap=ASAP,
            newsletter_hour=self.settings.delivery.local_time, zone=zone_label(subscriber.timezone, locale),
            **self.rhythm_choices(locale, subscriber.cadence, weekday_name(subscriber.weekday)),
            csrf=self.guard.make(token), action=f"{self.prefix}/preferences/{token}",
            notice=notice, error=error,
        )

    def rhythm_choices(self, locale: str, cadence: str, weekday: str) -> dict[str, Any]:
        """What web/rhythm.html.j2 shows: the chosen cadence and day, the days by their names in `locale`."""
        names = get_day_names("wide", locale=i18n.babel_locale(locale))
        return {"cadence": cadence, "chosen_weekday": weekday, "weekdays": [(WEEKDAYS[d], names[d]) for d in range(7)],
                "newsroom_day": names[self.settings.delivery.weekly_day]}

    # -- errors -----------------------------------------------------------------------------------
    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self.notice(exc.status_code, "not_found" if exc.status_code == 404 else "bad_request", headers=exc.headers)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        # Sent by Starlette's outermost middleware, around our _Guard: the headers are set here.
        return PlainTextResponse("Internal server error\n", status_code=500, headers={**SECURITY_HEADERS, **PRIVATE})


def _hour(value: object) -> str | None:
    """The form's hour as the store takes it: "HH:MM", ASAP, or NEWSLETTER_HOUR (the option "the
    newsroom's hour", an empty value); None for no hour."""
    try:
        return check_delivery_time(value) if isinstance(value, str) else None
    except InvalidSubscriber:
        return None


def read_rhythm(cadence: object, weekday: object) -> tuple[str | None, str | None] | None:
    """The form's cadence and day as the store takes them: (None, None) when the form has neither (a
    theme's page without them), the day "" for the newsroom's; None when either is not one the form offers."""
    if (cadence is not None and cadence not in CADENCES) or (weekday is not None and weekday not in ("", *WEEKDAYS)):
        return None
    return (cadence, weekday) if isinstance(cadence, str | None) and isinstance(weekday, str | None) else None


def zone_label(zone: str, locale: str) -> str:
    """The reader's time zone as the page names it: Africa/Casablanca (Maroc); a zone of no country
    (UTC, Etc/GMT+5) by its name alone."""
    territory = get_global("zone_territories").get(get_global("zone_aliases").get(zone, zone))
    country = Locale.parse(i18n.babel_locale(locale)).territories.get(territory) if territory not in (None, "ZZ") else None
    return f"{zone} ({country})" if country else zone


async def _is_one_click(request: Request) -> bool:
    """RFC 8058: the body is List-Unsubscribe=One-Click, urlencoded or as a multipart/form-data
    field; with no or another content type, the bare body must be exactly that (module docstring)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form(max_files=0, max_fields=16, max_part_size=1024)
        return form.get(ONE_CLICK[0]) == ONE_CLICK[1]
    return (await request.body()).strip() == f"{ONE_CLICK[0]}={ONE_CLICK[1]}".encode()
