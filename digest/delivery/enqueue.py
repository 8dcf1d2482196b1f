"""Enqueue an edition: freeze it (its content, its Date, a slot no source can know, each variant the
active readers chose, rendered once), publish its web page, and give every active reader a row due at
their hour. Idempotent: the day's edition is frozen once, and enqueueing it again only adds the rows of
readers who subscribed since; a correction (`replace`) is a new revision that supersedes the rows the
previous one has not sent yet.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from digest.core.clock import Clock
from digest.core.config import Settings
from digest.delivery.compose import Composer
from digest.delivery.editions import Editions, FrozenEdition, edition_key
from digest.delivery.personalize import new_slot
from digest.delivery.queue import Queue
from digest.pipeline.edition import DayEdition, publish_archive, refuse_empty
from subscribers.store import Store, join_rubrics
from subscribers.tokens import TOKEN_LENGTH, Tokens


@dataclass(frozen=True)
class Enqueued:
    frozen: FrozenEdition
    fresh: bool  # frozen by this call (False: it was enqueued already)
    added: int  # rows made by this call
    rendered: int  # variants rendered by this call
    replaced: str | None  # the revision this one superseded
    skipped: tuple[str, ...] = ()  # items a variant could not render, left out (printable)


def date_header(clock: Clock) -> datetime:
    """The Date of an edition's messages; SOURCE_DATE_EPOCH (the reproducible-builds convention) pins it."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return clock.now()


def draft(settings: Settings, day_edition: DayEdition, slot: str | None = None, clock: Clock | None = None) -> FrozenEdition:
    """The edition as it would be frozen: for a dry run, a test copy, or to be enqueued."""
    clock = clock or Clock()
    edition = day_edition.edition
    return FrozenEdition(key=edition_key(settings.newsletter.list_id, edition.date), list_id=settings.newsletter.list_id,
                         day=edition.date, revision=1, status="draft", enqueued_at=clock.now(),
                         date_header=date_header(clock), slot=slot or new_slot(TOKEN_LENGTH), edition=edition)


def enqueue(settings: Settings, store: Store, tokens: Tokens, clock: Clock, day: date,
            prepare: Callable[[], DayEdition], replace: bool = False, slot: str | None = None) -> Enqueued:
    """The day's edition enqueued; `prepare` (gathering the sources) is called only when the edition
    is not frozen yet, or when it is replaced. `slot`: the one to render with (else a new one)."""
    editions = Editions(store)
    list_id = settings.newsletter.list_id
    frozen = None if replace else editions.open_edition(list_id, day)
    fresh, rendered, replaced = False, 0, None
    skipped: tuple[str, ...] = ()
    if frozen is None:
        prepared = prepare()
        refuse_empty(prepared, "nothing is sent")
        made = draft(settings, prepared, slot, clock)
        frozen, replaced = editions.freeze(list_id, made.edition, made.slot, made.date_header, clock.now(), replace)
        fresh = frozen.slot == made.slot  # ours, not a concurrent enqueue's
        if fresh:
            rendered, skipped = _render_variants(settings, store, tokens, editions, frozen)
            publish_archive(prepared)  # the page the messages' "view in your browser" link opens
    queue = Queue(store, clock)
    if replaced:
        queue.supersede(replaced)
    added = queue.add_rows(frozen.key, clock.now(), settings.delivery.local_time)
    return Enqueued(frozen, fresh, added, rendered, replaced, skipped)


def _render_variants(settings: Settings, store: Store, tokens: Tokens, editions: Editions,
                     frozen: FrozenEdition) -> tuple[int, tuple[str, ...]]:
    """Every variant the active readers chose, rendered once and kept with the edition."""
    composer = Composer(settings, frozen, tokens, editions)
    for locale, rubrics in store.variants():
        composer.template(locale, join_rubrics(rubrics))
    return composer.compiles, tuple(composer.skipped)
