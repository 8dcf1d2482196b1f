"""Source kinds by name (digest's own and those plugged in through the ``digest.sources`` entry-point
group), guessing the kind of a source that does not say, and the one door every reader's items pass
through (`read`): whatever a reader returns, every text field of every item is cleaned
(sanitize.clean_item) and its warnings and errors are made safe to print.
"""
from __future__ import annotations

from dataclasses import replace
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from digest.core.config import SOURCE_KINDS
from digest.core.errors import SourceError
from digest.core.model import Item
from digest.core.text import printable
from digest.pipeline.sanitize import clean_item
from digest.pipeline.sources import feed, markdown, pagedump
from digest.pipeline.sources.base import (
    MAX_BYTES,
    Context,
    Reader,
    SourceKind,
    decode_text,
    too_large,
)
from digest.pipeline.sources.fetch import Fetched, fetch_all, read_capped

__all__ = ["MAX_BYTES", "Context", "Fetched", "Reader", "SourceKind", "decode_text", "fetch_all", "guess_kind",
           "read", "read_capped", "registry", "too_large"]

BUILT_IN = (markdown.KIND, feed.KIND, pagedump.KIND)  # in the order guessing asks them
assert tuple(sorted(k.name for k in BUILT_IN)) == tuple(sorted(SOURCE_KINDS))


@cache
def registry() -> dict[str, SourceKind]:
    """Every kind by name: digest's own, then the plug-ins'. An entry point gives a SourceKind, or a
    bare reader (which is then read only when a source names its kind)."""
    kinds = {kind.name: kind for kind in BUILT_IN}
    for ep in entry_points(group="digest.sources"):
        if ep.name not in kinds:
            plugged = ep.load()
            kinds[ep.name] = plugged if isinstance(plugged, SourceKind) else SourceKind(ep.name, plugged)
    return kinds


def guess_kind(location: str, data: bytes, content_type: str = "") -> str:
    """What kind of source these bytes are: the content decides, the name and content type hint, and
    each kind says what it claims (SourceKind)."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    suffix = Path(location.split("?", 1)[0]).suffix.lower()
    kinds = registry().values()
    for kind in kinds:
        if kind.claims(head, suffix, content_type):
            return kind.name
    return next((kind.name for kind in kinds if kind.fallback(head)), pagedump.KIND.name)


def read(fetched: Fetched, context: Context) -> list[Item]:
    """The source's items, each text field cleaned of what cannot be shown (one bad character never
    stops an edition); its warnings and errors escaped for a terminal; a reader's crash a SourceError."""
    name = fetched.spec.name
    kind = fetched.spec.kind or guess_kind(fetched.spec.location, fetched.data, fetched.content_type)
    found = registry().get(kind)
    if found is None:
        raise SourceError(name, f"unknown source kind {kind!r}", f"use one of {', '.join(registry())}")
    outer = context.warn

    def warn(text: str) -> None:
        outer(printable(text))

    try:
        items = found.read(fetched.data, replace(context, warn=warn))
    except SourceError as exc:
        raise SourceError(exc.source, printable(exc.message), exc.hint and printable(exc.hint)) from None
    except Exception as exc:  # a reader's bug (a third party's, say) is this source's failure only
        raise SourceError(name, f"the {kind} reader failed: {exc.__class__.__name__}: {printable(str(exc))[:200]}") from None
    if not isinstance(items, list) or not all(isinstance(item, Item) for item in items):
        raise SourceError(name, f"the {kind} reader did not return a list of items")
    cleaned = [clean_item(item) for item in items]
    if None in cleaned:
        warn(f"source {name!r}: left out {cleaned.count(None)} item(s) whose title is empty once cleaned")
    return [item for item in cleaned if item is not None]
