"""What a source kind is: its reader, what it knows itself by (for guessing), and the helpers readers share.

A reader is ``read(data: bytes, context: Context) -> list[Item]`` and raises SourceError for what it
cannot use. A SourceKind declares, as Pelican's readers declare their file extensions, what it can
read, so that guessing the kind of an undeclared source works for a kind added later (through the
``digest.sources`` entry-point group) as for digest's own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Protocol
from zoneinfo import ZoneInfo

from digest.core.config import SourceSpec
from digest.core.errors import SourceError
from digest.core.model import Item
from digest.core.text import clean_text

MAX_BYTES = 20 * 1024 * 1024  # no source of a day is bigger; a larger answer is a mistake


@dataclass(frozen=True)
class Context:
    spec: SourceSpec
    day: date  # the edition's date, in the newsroom's time zone
    tz: ZoneInfo
    warn: Callable[[str], None]


class Reader(Protocol):
    def __call__(self, data: bytes, context: Context) -> list[Item]: ...


def never(head: bytes) -> bool:
    return False


@dataclass(frozen=True)
class SourceKind:
    """A kind of source. Guessing asks every kind for a claim first (its `sniff` of the first bytes —
    BOM and white space stripped, lowercased —, its file `extensions`, its HTTP `content_types`),
    then every kind for a last resort (`fallback`): so a plug-in's claim beats digest's own catch-alls."""

    name: str
    read: Reader
    extensions: tuple[str, ...] = ()  # ".md": a path or URL ending so is this kind
    content_types: tuple[str, ...] = ()  # substrings of a Content-Type: "xml", "json"
    sniff: Callable[[bytes], bool] = never
    fallback: Callable[[bytes], bool] = never

    def claims(self, head: bytes, suffix: str, content_type: str) -> bool:
        return self.sniff(head) or suffix in self.extensions or any(t in content_type for t in self.content_types)


def too_large(name: str, what: str, limit: int) -> SourceError:
    size = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 2**10} KiB"
    return SourceError(name, f"{what} is larger than {size}", "no source of a day is that big: check the file")


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text (a BOM is dropped), cleaned of what cannot be shown (sanitize.clean_text); anything
    else is named, not guessed. An encoded lone surrogate is let through to be cleaned away."""
    try:
        return clean_text(data.decode("utf-8-sig", "surrogatepass"))
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceError(
            name, f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})", "save the file as UTF-8"
        ) from None


def image_size(width: object, height: object) -> tuple[int, int] | None:
    """A picture's size as a source states it: two whole numbers of pixels (1 to 10,000), or None."""
    try:
        w, h = int(str(width)), int(str(height))
    except ValueError:
        return None
    return (w, h) if 0 < w <= 10_000 and 0 < h <= 10_000 else None
