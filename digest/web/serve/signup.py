"""Readers sign themselves up: the form (GET and POST <base>/subscribe) and its confirmation (GET shows a
button, POST confirms, at <base>/subscribe/confirm/TOKEN), double opt-in.

A POST is answered with the same "check your inbox" page whatever became of it: an email sent, nothing
to send (the address is subscribed already), or a refusal. Refusals, each one log line and no email:
    origin     a cross-site POST from a page not in [signup] allowed_origins
    honeypot   the field people never see is filled
    stamp      the form's signed stamp is missing, forged, older than a day, or younger than min_seconds
    domain     the address's domain (or a parent) is a disposable one, or in blocked_domains
    name       the name carries a link or an address (spam meant for the confirmation email)
    form       a language, rubric, cadence or day that the form does not offer
    limit      the limits of the address (per day), the client's network and the domain (per hour),
               counted in the database so that every `digest serve` process shares them
A form posted from an allowed site carries no stamp (its page is not ours): it is answered with our
form, filled in ("one more step"), whose stamp then counts. An address that is not one is the only
answer that differs: the form again, with the error, since it says nothing of anyone's subscription.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from disposable_email_domains import blocklist
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from digest.core.config import LOCALES
from digest.core.config.model import WEEKDAYS
from digest.core.errors import InvalidSubscriber
from digest.pipeline import archive
from digest.web.serve.mailer import Letter, Mailer
from digest.web.serve.site import Site, mask, read_rhythm
from subscribers.consent import Origin, network
from subscribers.signups import CONFIRM_HOURS, Limits
from subscribers.signups import Request as SignupRequest
from subscribers.validate import clean_name, normalise_email

log = logging.getLogger("digest.serve")
STAMP_MAX_AGE = 24 * 3600  # a form left open for a day is stale
STEP_MIN_SECONDS = 1.0  # the "one more step" page asks for one click, not a whole form
FORM, STEP = "signup:form", "signup:step"  # what a stamp is bound to
# A name is a greeting, not a place for links: spam through the name field is what this stops.
_LINKISH = re.compile(r"(?i)://|www\.|@|<|>|\bhttps?\b|\b[a-z0-9-]+\.(?:com|net|org|info|biz|ru|cn|xyz|top|io|"
                      r"co|me|ly|link|click|online|site|shop|live)\b")
_LABEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


@dataclass(frozen=True)
class Filled:
    """A sign-up form as posted, its fields taken as text (what is not text is empty)."""

    email: str
    name: str
    locale: str
    rubrics: tuple[str, ...]
    stamp: str
    honeypot: str
    label: str  # the newsroom's name for the form on its own page (`form`), if it gave one
    cadence: str | None  # None: not on the form (a newsroom's own page without it): daily
    weekday: str | None  # an English day name, "" or None: the newsroom's day

    @classmethod
    def read(cls, form: FormData) -> Filled:
        def text(key: str) -> str:
            value = form.get(key)
            return value if isinstance(value, str) else ""

        label = text("form").strip().lower()
        return cls(email=text("email")[:400], name=text("name")[:1000], locale=text("locale"),
                   rubrics=tuple(v for v in form.getlist("rubric") if isinstance(v, str)),
                   stamp=text("stamp"), honeypot=text("website"),
                   label=label if _LABEL.fullmatch(label) else "",
                   cadence=_or_none(form.get("cadence")), weekday=_or_none(form.get("weekday")))


def _or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


class SignupDesk:
    """The sign-up routes, on the site's store, tokens, pages and the emails' Mailer."""

    def __init__(self, site: Site, mailer: Mailer) -> None:
        self.site = site
        self.mailer = mailer
        config = site.settings.signup
        self.config = config
        self.limits = Limits(config.per_address_per_day, config.per_network_per_hour, config.per_domain_per_hour)
        self.blocked = set(config.blocked_domains) | (blocklist if config.block_disposable else set())
        self.allowed = set(config.allowed_origins)
        self.base = site.settings.newsletter.base_url

    # -- the form -------------------------------------------------------------------------------------
    async def subscribe(self, request: Request) -> Response:
        if request.method != "POST":
            locale = request.query_params.get("lang", "")
            return self.form_page(locale if locale in LOCALES else self.site.settings.newsletter.locale)
        origin = self._origin(request)
        filled = Filled.read(await request.form(max_files=0, max_fields=64, max_part_size=4096))
        locale = filled.locale if filled.locale in LOCALES else self.site.settings.newsletter.locale
        if origin is None:
            return self._refused("origin", locale)
        if filled.honeypot:
            return self._refused("honeypot", locale)
        if not filled.stamp and origin != "own":
            return self.form_page(locale, filled, step=True)
        reason = self._stamp_refusal(filled.stamp)
        if reason:
            return self._refused(reason, locale)
        try:
            email = normalise_email(filled.email)
        except InvalidSubscriber:
            error = self.site._t(locale, "This address does not look right: check it and try again.")
            return self.form_page(locale, filled, error=error, status=400)
        reason = self._content_refusal(email, filled)
        if reason:
            return self._refused(reason, locale)
        source = f"{self.base}/subscribe" if origin == "own" else origin
        by = Origin("form", source + (f" (form {filled.label})" if filled.label else ""), self.config.consent_version,
                    network(request.client.host if request.client else None), request.headers.get("user-agent"))
        form = SignupRequest(email=email, name=clean_name(filled.name), locale=locale, rubrics=frozenset(filled.rubrics),
                             timezone=self.site.settings.newsletter.timezone, wording=self.config.consent_version,
                             network=by.network, cadence=filled.cadence or "daily",
                             weekday=WEEKDAYS.index(filled.weekday) if filled.weekday else None)
        try:
            requested = await run_in_threadpool(self.site.store.request_signup, form, by, self.limits)
        except InvalidSubscriber:  # the same new address from two processes at once: one of them wins
            return self._refused("busy", locale)
        if requested.outcome == "limited":
            return self._refused(f"limit of the {requested.limit}", locale)
        response = self.inbox_page(locale)
        if requested.outcome == "active":
            log.info("sign-up for an address subscribed already: nothing sent")
        else:
            assert requested.signup_id is not None
            token = self.site.tokens.make_expiring(requested.signup_id, "confirm", time.time())
            letter = Letter("confirm", email, locale, f"signup-{requested.signup_id}",
                            {"confirm_url": f"{self.base}/subscribe/confirm/{token}"})
            log.info("sign-up %d: confirmation email to send", requested.signup_id)
            response.background = BackgroundTask(self.mailer.send, letter)
        return response

    def _origin(self, request: Request) -> str | None:
        """"own" for our form, the site's origin for an allowed site's page, None for any other page.

        Our pages send no Referer, so a browser says `Origin: null` for our own form: Sec-Fetch-Site
        (every current browser) then tells; a client with neither header (no browser) is taken as ours,
        and the stamp it must carry is only on our page.
        """
        site = request.headers.get("sec-fetch-site")
        origin = (request.headers.get("origin") or "").lower()
        own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
        if origin in (self.site.origin, own):
            return "own"
        if origin in self.allowed:
            return origin
        if origin in ("", "null") and site in (None, "same-origin", "none"):
            return "own"
        return None

    def _stamp_refusal(self, stamp: str) -> str:
        for bound, minimum in ((FORM, self.config.min_seconds), (STEP, min(STEP_MIN_SECONDS, self.config.min_seconds))):
            age = self.site.guard.age(bound, stamp)
            if age is not None:
                return "" if age >= minimum else "stamp: sent back too fast"
        return "stamp: missing, forged or older than a day"

    def _content_refusal(self, email: str, filled: Filled) -> str:
        domain = email.rpartition("@")[2]
        parts = domain.split(".")
        if any(".".join(parts[i:]) in self.blocked for i in range(len(parts) - 1)):
            return "domain blocked"
        if _LINKISH.search(filled.name):
            return "name with a link"
        if not all(key in self.site.known for key in filled.rubrics):
            return "form: an unknown rubric"
        if read_rhythm(filled.cadence, filled.weekday) is None:
            return "form: an unknown cadence or day"
        return ""

    def _refused(self, reason: str, locale: str) -> Response:
        log.info("sign-up refused (%s): nothing sent", reason)
        return self.inbox_page(locale)

    # -- the pages ---------------------------------------------------------------------------------
    def inbox_page(self, locale: str) -> Response:
        """The one answer to every POST (see the module's docstring)."""
        return self.site.notice(200, "check_inbox", locale)

    def form_page(self, locale: str, filled: Filled | None = None, step: bool = False, error: str = "",
                  status: int = 200) -> Response:
        rubrics = [{"key": r.key, "label": r.label_for(locale)} for r in self.site.settings.rubrics]
        return self.site.page(
            "subscribe.html.j2", locale, status, private=True, step=step, error=error,
            action=f"{self.site.prefix}/subscribe", stamp=self.site.guard.make(STEP if step else FORM),
            email=filled.email if filled else "", entered_name=filled.name if filled else "",
            form_label=filled.label if filled else "", chosen_locale=locale,
            languages=[(code, archive.language_name(code)) for code in LOCALES], rubrics=rubrics,
            chosen=set(filled.rubrics) if filled else set(), privacy_url=self.config.privacy_url,
            **self.site.rhythm_choices(locale, (filled and filled.cadence) or "daily", (filled and filled.weekday) or ""),
        )

    # -- the confirmation ---------------------------------------------------------------------------------
    async def confirm(self, request: Request) -> Response:
        token = request.path_params["token"]
        signup_id = self.site.tokens.verify_expiring(token, "confirm", CONFIRM_HOURS * 3600, time.time())
        pending = None if signup_id is None else await run_in_threadpool(self.site.store.pending_signup, signup_id)
        if signup_id is None or pending is None:
            log.info("confirmation link not valid, used or expired: nothing changed")
            return self.site.notice(404, "confirm_gone")
        action = f"{self.site.prefix}/subscribe/confirm/{token}"
        if request.method != "POST":
            return self.site.page("confirm.html.j2", pending.locale, private=True, state="confirm",
                                  address=mask(pending.email), action=action, csrf=self.site.guard.make(token))
        form = await request.form(max_files=0, max_fields=16, max_part_size=1024)
        if not self.site._same_origin(request) or not self.site.guard.check(token, form.get("csrf")):
            return self.site.notice(403, "expired", pending.locale)
        by = Origin("form", f"{self.base}/subscribe/confirm", None,
                    network(request.client.host if request.client else None), request.headers.get("user-agent"))
        subscriber = await run_in_threadpool(self.site.store.confirm_signup, signup_id, by)
        if subscriber is None:
            return self.site.notice(404, "confirm_gone", pending.locale)
        log.info("sign-up %d confirmed: subscriber %d is active", signup_id, subscriber.id)
        link = self.site.tokens.make(subscriber.id)
        response = self.site.page("confirm.html.j2", subscriber.locale, private=True, state="done",
                                  address=mask(subscriber.email),
                                  preferences_href=f"{self.site.prefix}/preferences/{link}")
        response.background = BackgroundTask(self.mailer.send, self._welcome(subscriber.id, subscriber.email,
                                                                             subscriber.locale, link))
        return response

    def _welcome(self, subscriber_id: int, email: str, locale: str, link: str) -> Letter:
        days = archive.editions(self.site.settings.archive)
        links = {"archive_url": f"{self.base}/archive/", "unsubscribe_url": f"{self.base}/unsubscribe/{link}",
                 "preferences_url": f"{self.base}/preferences/{link}",
                 "edition_url": f"{self.base}/archive/{days[0].isoformat()}.html" if days else ""}
        # The time in the key: a reader welcomed twice (back after leaving) gets two distinct messages.
        return Letter("welcome", email, locale, f"welcome-{subscriber_id}-{int(time.time())}", links)
