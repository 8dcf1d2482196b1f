"""Each reader's message, from one render per variant of a frozen edition: the variant a stored
choice stands for, its Template made once, the reader's token filled in, a DKIM signature over it.

The variants were rendered when the edition was enqueued, with the edition's own random slot (no
source can know it, so no item can carry a reader's token). A variant nobody had chosen then (a new
reader's choice) is rendered here from the frozen content, with the same slot, and kept for the
other workers.
"""
from __future__ import annotations

from typing import NamedTuple

from digest.core.config import Settings
from digest.core.locales import for_reader
from digest.core.model import Rendered, Variant
from digest.delivery.bounces.tags import TAG_LENGTH, VerpTags, nobody
from digest.delivery.editions import Editions, FrozenEdition, variant_key
from digest.delivery.items import carried
from digest.delivery.personalize import Feedback, Recipient, Template
from digest.delivery.signing import Signer
from digest.pipeline import message
from digest.pipeline.render import Renderer
from subscribers.store import split_stored
from subscribers.tokens import TOKEN_LENGTH, Tokens


def reader_variant(settings: Settings, locale: str, rubrics: str, known: frozenset[str] | None = None) -> Variant:
    """The variant a stored (locale, rubrics) stands for: rubrics no longer configured dropped,
    none left meaning all; a language without a catalog falling back to the newsletter's, the
    newsletter's own language taking its region (ar → ar-MA)."""
    known = known if known is not None else frozenset(r.key for r in settings.rubrics)
    chosen = frozenset(split_stored(rubrics)) & known
    return Variant(for_reader(locale, settings.newsletter.locale), chosen or None)


class Composed(NamedTuple):
    data: bytes
    message_id: str
    return_path: str  # the envelope sender: the reader's VERP address with [bounces], else the fixed one


class Composer:
    def __init__(self, settings: Settings, frozen: FrozenEdition, tokens: Tokens,
                 editions: Editions | None = None, rendered: dict[str, Rendered] | None = None) -> None:
        self.settings = settings
        self.frozen = frozen
        self.edition_key = frozen.key
        self.tokens = tokens
        self.editions = editions
        self.slot = frozen.slot
        self.renderer = Renderer(settings, slot=frozen.slot)
        self.signer = Signer(settings.dkim) if settings.dkim else None
        self.compiles = 0  # variants rendered by this process: one per variant, never one per recipient
        self.skipped: list[str] = []  # items a variant could not render, left out (printable)
        self._rendered = dict(rendered or {})
        self._templates: dict[tuple[str, str], Template] = {}
        self._by_variant: dict[Variant, Template] = {}
        self._known = frozenset(r.key for r in settings.rubrics)
        self.tags = VerpTags(tokens, settings.bounces) if settings.bounces else None
        self.return_path = message.return_path(settings)

    def variant(self, locale: str, rubrics: str) -> Variant:
        return reader_variant(self.settings, locale, rubrics, self._known)

    def rendered(self, variant: Variant) -> Rendered:
        """The variant as enqueued, or rendered now from the frozen edition (and kept)."""
        key = variant_key(variant)
        if key not in self._rendered:
            rendered = self.renderer.render(self.frozen.edition, variant)
            self.compiles += 1
            if self.editions is not None:
                self.editions.keep_variant(self.edition_key, rendered, carried(self.frozen.edition, variant))
            self._rendered[key] = rendered
        found = self._rendered[key]
        self.skipped += [item for item in found.skipped if item not in self.skipped]
        return found

    def template(self, locale: str, rubrics: str) -> Template:
        key = (locale, rubrics)
        if key not in self._templates:
            variant = self.variant(locale, rubrics)
            if variant not in self._by_variant:
                self._by_variant[variant] = self._build(self.rendered(variant))
            self._templates[key] = self._by_variant[variant]
        return self._templates[key]

    def _build(self, rendered: Rendered) -> Template:
        news = self.settings.newsletter
        return Template(rendered, sender=news.sender, edition_key=self.edition_key, list_id=news.list_id,
                        list_name=news.name, base_url=news.base_url, token_length=TOKEN_LENGTH,
                        unsubscribe_mailto=news.unsubscribe_mailto, reply_to=news.reply_to,
                        date=self.frozen.date_header, feedback=self._feedback(rendered))

    def _feedback(self, rendered: Rendered) -> Feedback | None:
        """Gmail's Feedback-ID (campaign:variant:type:sender): the edition, the variant's language,
        "digest", the list id; complaints are then counted per edition and language."""
        bounces = self.settings.bounces
        if bounces is None:
            return None
        list_id = self.settings.newsletter.list_id
        campaign = self.edition_key.removeprefix(list_id + "-")
        return Feedback(f"{campaign}:{rendered.variant.locale}:digest:{list_id}", TAG_LENGTH,
                        bounces.complaints_address)

    def compose(self, subscriber_id: int, email: str, name: str, locale: str, rubrics: str,
                wire: bool = False) -> Composed:
        """The reader's message, its Message-ID and its return path: as stored (an outbox, a dry run),
        or `wire`-ready for SMTP's DATA."""
        template = self.template(locale, rubrics)
        message_id = template.message_id(email)
        tag, return_path = "", self.return_path
        if self.tags is not None:
            tag = self.tags.make(subscriber_id, self.frozen.day, self.frozen.revision)
            return_path = self.tags.return_path(tag)
        recipient = Recipient(subscriber_id, email, name, self.tokens.make(subscriber_id), message_id, tag)
        return Composed(self.finish(template, recipient, wire), message_id, return_path)

    def nobody_tag(self) -> str:
        """The tag of a copy that belongs to no reader (an editor's test copy)."""
        return nobody() if self.tags is not None else ""

    def finish(self, template: Template, recipient: Recipient, wire: bool) -> bytes:
        if self.signer is None:
            return template.fill_wire(recipient) if wire else template.fill(recipient)
        plain = template.fill(recipient)
        signature = self.signer.signature(plain)  # over the message itself, never its dot-stuffed form
        return template.fill_wire(recipient, prefix=signature) if wire else signature + plain
