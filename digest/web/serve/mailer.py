"""The sign-up's two emails, the confirmation and the welcome: MJML like the digest (templates/email/
confirm.* and welcome.*, in the reader's language), built as RFC 5322 messages by digest.pipeline.message
and sent by the project's transports (the [smtp] relay, else the outbox folder's `signup` box).

Nothing a stranger typed reaches these emails but the address itself: the context below holds the
newsletter's own settings, the address as normalised, and links this module makes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

import jinja2
import mjml
from starlette.concurrency import run_in_threadpool

from digest.core.config import Settings
from digest.core.errors import ThemeError
from digest.core.model import Rendered, Variant
from digest.core.text import one_line, printable
from digest.delivery.signing import Signer
from digest.delivery.transports import Envelope, Kind, open_transport
from digest.pipeline import i18n, message
from digest.pipeline.render import inline_css

log = logging.getLogger("digest.serve")
BOX = "signup"  # the outbox folder's box for these emails


@dataclass(frozen=True)
class Letter:
    """One email to write: which (confirm, welcome), to whom, in which language, with which links."""

    kind: str
    to: str
    locale: str
    key: str  # names the message (its Message-ID) and its outbox file
    links: dict[str, str]


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.signer = Signer(settings.dkim) if settings.dkim else None
        smtp = settings.smtp
        self.envelope_from = (smtp.envelope_from if smtp and smtp.envelope_from
                              else parseaddr(settings.newsletter.sender)[1])
        self._envs: dict[str, jinja2.Environment] = {}

    def render(self, letter: Letter) -> Rendered:
        """Subject, HTML (MJML compiled, CSS inlined) and text of a letter; a broken theme file is a ThemeError."""
        env = self._envs.setdefault(letter.locale, i18n.environment(self.settings.theme, letter.locale))
        rtl = i18n.direction(letter.locale) == "rtl"
        context: dict[str, Any] = {
            "newsletter": self.settings.newsletter, "lang": letter.locale, "dir": "rtl" if rtl else "ltr",
            "rtl": rtl, "start": "right" if rtl else "left", "end": "left" if rtl else "right",
            "tints": (), "address": letter.to, **letter.links,  # no rubric in a letter: no tint
        }
        subject = one_line(self._template(env, f"email/{letter.kind}-subject.txt.j2", context))
        context["subject"] = subject
        try:
            compiled = mjml.mjml2html(self._template(env, f"email/{letter.kind}.mjml.j2", context), fonts={})
        except ValueError as exc:
            raise ThemeError(f"email/{letter.kind}.mjml.j2 does not give valid MJML: {one_line(str(exc))[:300]}") from None
        if rtl:  # as the digest does: mrml aligns columns left even right to left
            compiled = compiled.replace("text-align:left;direction:rtl", "text-align:right;direction:rtl")
        text = self._template(env, f"email/{letter.kind}.txt.j2", context).strip() + "\n"
        return Rendered(variant=Variant(letter.locale), subject=subject, preheader="", html=inline_css(compiled), text=text)

    def _template(self, env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
        try:
            return env.get_template(name).render(context)
        except jinja2.TemplateError as exc:
            raise ThemeError(f"{name}: {exc}", "check the template against the built-in one") from None

    def build(self, letter: Letter) -> bytes:
        news = self.settings.newsletter
        # Auto-Submitted (RFC 3834): no vacation reply answers a confirmation.
        msg = message.build(self.render(letter), news.sender, letter.to, letter.key, reply_to=news.reply_to,
                            extra_headers={"Auto-Submitted": "auto-generated"})
        data = message.to_bytes(msg)
        return self.signer.signature(data) + data if self.signer else data

    async def send(self, letter: Letter) -> bool:
        """Render and send one letter; whatever goes wrong is one log line (the reader can ask again)."""
        try:
            data = await run_in_threadpool(self.build, letter)
            transport = open_transport(self.settings, BOX)
        except Exception as exc:  # noqa: BLE001 — a background task has no one to answer: it logs
            log.error("%s email %s not sent: %s", letter.kind, letter.key, printable(one_line(str(exc))[:300]))
            return False
        try:
            outcome = await transport.send(Envelope(self.envelope_from, letter.to, letter.key), data)
        finally:
            await transport.close()
        if outcome.kind != Kind.SENT:
            # The relay's reply may quote the address: written as it is kept, printable, never raw.
            log.warning("%s email %s not sent: %s %s", letter.kind, letter.key, outcome.code or "",
                        printable(one_line(outcome.message)[:300]))
            return False
        log.info("%s email %s sent", letter.kind, letter.key)
        return True
