"""Source kinds: a registry from `kind` to reader, kind guessing, and fetching bytes from paths or URLs.

A reader is ``read(data: bytes, context: Context) -> list[Item]`` and raises SourceError for what it
cannot use. Third parties add kinds through the ``digest.sources`` entry-point group.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, Protocol
from zoneinfo import ZoneInfo

import httpx

from ..errors import SourceError
from ..model import Item
from ..settings import SourceSpec

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
    from . import feed, markdown, pagedump

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


async def _fetch_one(client: httpx.AsyncClient | None, spec: SourceSpec) -> Fetched:
    if not spec.is_url:
        path = Path(spec.location)
        try:
            return Fetched(spec, await asyncio.to_thread(path.read_bytes))
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
        raise SourceError(spec.name, f"{spec.location} did not answer in time", "raise fetch_timeout or check the address")
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
    kind = fetched.spec.kind or guess_kind(fetched.spec.location, fetched.data, fetched.content_type)
    reader = registry().get(kind)
    if reader is None:
        raise SourceError(fetched.spec.name, f"unknown source kind {kind!r}", f"use one of {', '.join(registry())}")
    return reader(fetched.data, context)


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text (a BOM is dropped); anything else is named, not guessed."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceError(
            name, f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})", "save the file as UTF-8"
        ) from None
