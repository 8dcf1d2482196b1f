"""A source's bytes, from a file or an http(s) URL, fetched concurrently and capped at MAX_BYTES."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx

from digest.core.config import SourceSpec
from digest.core.errors import SourceError
from digest.pipeline.sources.base import MAX_BYTES, too_large

USER_AGENT = "digest/0.1 (+newsletter digest generator)"


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


async def _fetch_one(client: httpx.AsyncClient | None, spec: SourceSpec) -> Fetched:
    if not spec.is_url:
        path = Path(spec.location)
        try:
            return Fetched(spec, await asyncio.to_thread(read_capped, path))
        except ValueError:
            raise too_large(spec.name, str(path), MAX_BYTES) from None
        except FileNotFoundError:
            raise SourceError(spec.name, f"no such file: {path}") from None
        except IsADirectoryError:
            raise SourceError(spec.name, f"{path} is a folder, not a file") from None
        except OSError as exc:
            raise SourceError(spec.name, f"cannot read {path}: {exc.strerror or exc}") from None
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
        raise SourceError(spec.name, f"{spec.location} did not answer in time", "raise fetch_timeout_seconds or check the address") from None
    except httpx.HTTPError as exc:
        raise SourceError(spec.name, f"cannot fetch {spec.location}: {exc.__class__.__name__}: {exc}") from None


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
