"""Source kinds: a registry from `kind` to reader, kind guessing, fetching bytes from paths or URLs
(both capped at MAX_BYTES), and the one door every reader's items pass through (`read`).

A reader is ``read(data: bytes, context: Context) -> list[Item]`` and raises SourceError for what it
cannot use. Third parties add kinds through the ``digest.sources`` entry-point group. Whatever a reader
returns, `read` cleans every text field of every item (sanitize.clean_item) and makes its warnings
and errors safe to print.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, Protocol
from zoneinfo import ZoneInfo

import httpx

from digest.core.config import SourceSpec
from digest.core.errors import SourceError
from digest.core.model import Item
from digest.core.text import clean_text, printable
from digest.pipeline.sanitize import clean_item

USER_AGENT = "digest/0.1 (+newsletter digest generator)"
MAX_BYTES = 20 * 1024 * 1024  # no source of a day is bigger; a larger answer is a mistake


@dataclass(frozen=True)
class Context:
    spec: SourceSpec
    day: date  # the edition's date, in the newsroom's time zone
    tz: ZoneInfo
    warn: Callable[[str], None]


class Reader(Protocol):
    def __call__(self, data: bytes, context: Context) -> list[Item]: ...


@cache
def registry() -> dict[str, Reader]:
    from digest.pipeline.sources import feed, markdown, pagedump

    readers: dict[str, Reader] = {"pagedump": pagedump.read, "feed": feed.read, "markdown": markdown.read}
    for ep in entry_points(group="digest.sources"):
        readers.setdefault(ep.name, ep.load())
    return readers


def guess_kind(location: str, data: bytes, content_type: str = "") -> str:
    """What kind of source these bytes are: the content decides, the name and content type only hint."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    suffix = Path(location.split("?", 1)[0]).suffix.lower()
    if head.startswith(b"---") or suffix in (".md", ".markdown"):
        return "markdown"
    if head.startswith(b"{") and b"jsonfeed" in head:
        return "feed"
    if head.startswith(b"<") and any(tag in head for tag in (b"<rss", b"<feed", b"<rdf:rdf", b"<?xml")):
        return "feed"
    if suffix in (".xml", ".rss", ".atom", ".rdf", ".json") or any(t in content_type for t in ("xml", "json")):
        return "feed"
    if head.startswith(b"<"):
        return "feed"  # HTML or broken XML: the feed reader says clearly what it is not
    return "pagedump"


@dataclass(frozen=True)
class Fetched:
    spec: SourceSpec
    data: bytes
    content_type: str = ""


def read_capped(path: Path, limit: int = MAX_BYTES) -> bytes:
    """A local file's bytes, never more than `limit`: at most limit + 1 bytes are read to tell."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(limit)
    return data


def too_large(name: str, what: str, limit: int) -> SourceError:
    size = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 2**10} KiB"
    return SourceError(name, f"{what} is larger than {size}", "no source of a day is that big: check the file")


async def _fetch_one(client: httpx.AsyncClient | None, spec: SourceSpec) -> Fetched:
    if not spec.is_url:
        path = Path(spec.location)
        try:
            return Fetched(spec, await asyncio.to_thread(read_capped, path))
        except ValueError:
            raise too_large(spec.name, str(path), MAX_BYTES)
        except FileNotFoundError:
            raise SourceError(spec.name, f"no such file: {path}")
        except IsADirectoryError:
            raise SourceError(spec.name, f"{path} is a folder, not a file")
        except OSError as exc:
            raise SourceError(spec.name, f"cannot read {path}: {exc.strerror or exc}")
    assert client is not None
    try:
        # httpx's timeout is per read: a server dripping a byte at a time would never hit it.
        async with asyncio.timeout(client.timeout.read or 10.0), client.stream("GET", spec.location) as response:
            if response.status_code >= 400:
                raise SourceError(spec.name, f"{spec.location} answered HTTP {response.status_code}")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise SourceError(spec.name, f"{spec.location} is larger than {MAX_BYTES // 2**20} MiB")
                chunks.append(chunk)
            return Fetched(spec, b"".join(chunks), response.headers.get("content-type", ""))
    except (httpx.TimeoutException, TimeoutError):
        raise SourceError(spec.name, f"{spec.location} did not answer in time", "raise fetch_timeout_seconds or check the address")
    except httpx.HTTPError as exc:
        raise SourceError(spec.name, f"cannot fetch {spec.location}: {exc.__class__.__name__}: {exc}")


async def fetch_all(specs: list[SourceSpec], timeout: float) -> list[Fetched | SourceError]:
    """Every source's bytes, fetched concurrently; a failure is returned in its place, not raised."""
    needs_http = any(spec.is_url for spec in specs)
    client = (
        httpx.AsyncClient(timeout=timeout, follow_redirects=True, max_redirects=5, headers={"User-Agent": USER_AGENT})
        if needs_http
        else None
    )
    try:
        results = await asyncio.gather(*(_fetch_one(client, spec) for spec in specs), return_exceptions=True)
    finally:
        if client is not None:
            await client.aclose()
    out: list[Fetched | SourceError] = []
    for spec, result in zip(specs, results):
        if isinstance(result, BaseException) and not isinstance(result, SourceError):
            if not isinstance(result, Exception):
                raise result
            result = SourceError(spec.name, f"{result.__class__.__name__}: {result}")
        out.append(result)
    return out


def read(fetched: Fetched, context: Context) -> list[Item]:
    """The source's items, each text field cleaned of what cannot be shown (one bad character never
    stops an edition); its warnings and errors escaped for a terminal; a reader's crash a SourceError."""
    name = fetched.spec.name
    kind = fetched.spec.kind or guess_kind(fetched.spec.location, fetched.data, fetched.content_type)
    reader = registry().get(kind)
    if reader is None:
        raise SourceError(name, f"unknown source kind {kind!r}", f"use one of {', '.join(registry())}")
    outer = context.warn

    def warn(text: str) -> None:
        outer(printable(text))

    try:
        items = reader(fetched.data, replace(context, warn=warn))
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
