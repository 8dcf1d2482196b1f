"""Each reader's message, from one render per variant: the variant a stored choice stands for, its
Template made once, the reader's token filled in, a DKIM signature over the result.

The edition renders with a slot drawn at random here (no source can know it, so no item can carry a
reader's token); a variant is rendered the first time a reader needs it, never per reader.
"""
from __future__ import annotations

from datetime import datetime

from digest.core.config import Settings
from digest.core.locales import for_reader
from digest.core.model import Edition, Rendered, Variant
from digest.delivery.personalize import Recipient, Template, new_slot
from digest.delivery.signing import Signer
from digest.pipeline import message
from digest.pipeline.render import Renderer
from subscribers.store import split_stored
from subscribers.tokens import TOKEN_LENGTH, Tokens


class Composer:
    def __init__(self, settings: Settings, edition: Edition, edition_key: str, tokens: Tokens,
                 date: datetime | None = None) -> None:
        self.settings = settings
        self.edition = edition
        self.edition_key = edition_key
        self.tokens = tokens
        self.slot = new_slot(TOKEN_LENGTH)
        self.renderer = Renderer(settings, slot=self.slot)
        self.signer = Signer(settings.dkim) if settings.dkim else None
        self.date = date or message.now()  # one Date for the whole edition
        self.compiles = 0  # MJML compiles: one per variant, never one per recipient
        self.skipped: list[str] = []  # items a variant could not render, left out (printable)
        self._templates: dict[tuple[str, str], Template] = {}
        self._by_variant: dict[Variant, Template] = {}
        self._known = {r.key for r in settings.rubrics}

    def variant(self, locale: str, rubrics: str) -> Variant:
        """The variant a stored (locale, rubrics) stands for: rubrics no longer configured dropped,
        none left meaning all; a language without a catalog falling back to the newsletter's, the
        newsletter's own language taking its region (ar → ar-MA)."""
        chosen = frozenset(split_stored(rubrics)) & self._known
        return Variant(for_reader(locale, self.settings.newsletter.locale), chosen or None)

    def template(self, locale: str, rubrics: str) -> Template:
        key = (locale, rubrics)
        if key not in self._templates:
            variant = self.variant(locale, rubrics)
            if variant not in self._by_variant:
                self._by_variant[variant] = self._build(self.renderer.render(self.edition, variant))
            self._templates[key] = self._by_variant[variant]
        return self._templates[key]

    def _build(self, rendered: Rendered) -> Template:
        self.compiles += 1
        self.skipped += [item for item in rendered.skipped if item not in self.skipped]
        news = self.settings.newsletter
        return Template(rendered, sender=news.sender, edition_key=self.edition_key, list_id=news.list_id,
                        list_name=news.name, base_url=news.base_url, token_length=TOKEN_LENGTH,
                        unsubscribe_mailto=news.unsubscribe_mailto, reply_to=news.reply_to, date=self.date)

    def compose(self, subscriber_id: int, email: str, name: str, locale: str, rubrics: str,
                wire: bool = False) -> tuple[bytes, str]:
        """The reader's message and its Message-ID: as stored (an outbox, a dry run), or `wire`-ready
        for SMTP's DATA."""
        template = self.template(locale, rubrics)
        message_id = template.message_id(email)
        recipient = Recipient(subscriber_id, email, name, self.tokens.make(subscriber_id), message_id)
        return self.finish(template, recipient, wire), message_id

    def finish(self, template: Template, recipient: Recipient, wire: bool) -> bytes:
        if self.signer is None:
            return template.fill_wire(recipient) if wire else template.fill(recipient)
        plain = template.fill(recipient)
        signature = self.signer.signature(plain)  # over the message itself, never its dot-stuffed form
        return template.fill_wire(recipient, prefix=signature) if wire else signature + plain
