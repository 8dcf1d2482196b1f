"""digest.toml (and DIGEST_* variables) → typed, frozen settings; every error names file and key."""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError

from .errors import ConfigError

LOCALES = ("fr", "en", "ar")
SOURCE_KINDS = ("pagedump", "feed", "markdown")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Rubric:
    key: str
    label: str
    labels: dict[str, str] = field(default_factory=dict)  # per-locale labels; `label` is the fallback
    weight: float = 1.0
    max_items: int = 10
    color: str = "#1d3557"
    keywords: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # source categories that mean this rubric

    def label_for(self, locale: str) -> str:
        return self.labels.get(locale, self.label)


@dataclass(frozen=True)
class Ranking:
    half_life_hours: float = 6.0
    featured_boost: float = 1.5
    leads: int = 1
    title_similarity: float = 0.9  # near-identical titles above this ratio are one story


@dataclass(frozen=True)
class Layout:
    budget_bytes: int = 100_000  # Gmail clips past ~102 KB
    more_max: int = 25  # links in "more on the web" at most
    excerpt_chars: int = 280


@dataclass(frozen=True)
class SourceSpec:
    name: str
    location: str  # a path (resolved against the config's folder) or an http(s) URL
    kind: str | None = None  # None: guess from the content
    rubric: str | None = None  # every item of this source goes to this rubric
    featured: bool | None = None  # None: the reader decides (page-dump and Markdown articles are featured)

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Newsletter:
    name: str = "digest"
    sender: str = "digest <digest@localhost>"
    reply_to: str | None = None
    base_url: str = "https://localhost/digest"
    postal_address: str = ""
    locale: str = "fr"
    timezone: str = "UTC"
    list_id: str = "digest.localhost"


@dataclass(frozen=True)
class Settings:
    newsletter: Newsletter = field(default_factory=Newsletter)
    ranking: Ranking = field(default_factory=Ranking)
    layout: Layout = field(default_factory=Layout)
    rubrics: tuple[Rubric, ...] = ()
    default_rubric: str = "actualite"
    sources: tuple[SourceSpec, ...] = ()
    theme: Path | None = None  # a folder whose templates override the built-in ones
    fetch_timeout: float = 10.0
    path: Path | None = None  # the file these came from

    def rubric(self, key: str) -> Rubric:
        for rubric in self.rubrics:
            if rubric.key == key:
                return rubric
        raise KeyError(key)


DEFAULT_RUBRIC = Rubric(
    key="actualite", label="Actualité", labels={"en": "News", "ar": "أخبار"}, weight=1.0, max_items=50
)


def defaults() -> Settings:
    """The built-in settings used without -c: one default rubric, French."""
    return Settings(rubrics=(DEFAULT_RUBRIC,), default_rubric=DEFAULT_RUBRIC.key)


class _Table:
    """Reads one TOML table, naming file and key in every error, and rejecting unknown keys."""

    def __init__(self, data: Any, where: str, file: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: [{where}] must be a table")
        self.data, self.where, self.file, self.seen = data, where, file, set()

    def _fail(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.where}.{key} {what}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise self._fail(key, "is required")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self._fail(key, f"must be a {names}, not {value!r}")
        return value

    def positive(self, key: str, kind: type, default: Any) -> Any:
        value = self.get(key, kind, default)
        if value <= 0:
            raise self._fail(key, f"must be greater than 0, not {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        if not all(isinstance(v, str) and v.strip() for v in values):
            raise self._fail(key, "must be a list of non-empty strings")
        return tuple(v.strip() for v in values)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigError(f"{self.file}: unknown key {self.where}.{unknown[0]}", "check its spelling")


def check_timezone(name: str, where: str = "--timezone") -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown time zone {name!r}", "use an IANA name such as Africa/Casablanca")
    return name


def check_locale(name: str, where: str) -> str:
    try:
        Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        raise ConfigError(f"{where}: unknown locale {name!r}", f"use one of {', '.join(LOCALES)}")
    if name not in LOCALES:
        raise ConfigError(f"{where}: locale {name!r} has no translation", f"use one of {', '.join(LOCALES)}")
    return name


def load(path: str | Path) -> Settings:
    """Read digest.toml; relative paths in it are relative to its folder."""
    path = Path(path)
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file", "pass -c with the path of your digest.toml")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read it: {exc}")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}")
    return parse(raw, file=file, folder=path.parent)


def parse(raw: dict[str, Any], file: str = "digest.toml", folder: Path = Path(".")) -> Settings:
    top = _Table(raw, "", file)
    top.where = "(top level)"

    n = _Table(top.get("newsletter", dict, {}), "newsletter", file)
    newsletter = Newsletter(
        name=n.get("name", str, Newsletter.name),
        sender=n.get("sender", str, Newsletter.sender),
        reply_to=n.get("reply_to", str, None),
        base_url=n.get("base_url", str, Newsletter.base_url).rstrip("/"),
        postal_address=n.get("postal_address", str, ""),
        locale=check_locale(n.get("locale", str, "fr"), f"{file}: newsletter.locale"),
        timezone=check_timezone(n.get("timezone", str, "UTC"), f"{file}: newsletter.timezone"),
        list_id=n.get("list_id", str, Newsletter.list_id),
    )
    if not newsletter.base_url.startswith("https://"):
        raise ConfigError(f"{file}: newsletter.base_url must start with https://", "links in the email are https only")
    theme = n.get("theme", str, None)
    n.done()

    r = _Table(top.get("ranking", dict, {}), "ranking", file)
    ranking = Ranking(
        half_life_hours=r.positive("half_life_hours", float, Ranking.half_life_hours),
        featured_boost=r.positive("featured_boost", float, Ranking.featured_boost),
        leads=r.get("leads", int, Ranking.leads),
        title_similarity=r.positive("title_similarity", float, Ranking.title_similarity),
    )
    if ranking.leads < 0 or not 0 < ranking.title_similarity <= 1:
        raise ConfigError(f"{file}: ranking.leads must be ≥ 0 and ranking.title_similarity in (0, 1]")
    r.done()

    lay = _Table(top.get("layout", dict, {}), "layout", file)
    layout = Layout(
        budget_bytes=lay.positive("budget_bytes", int, Layout.budget_bytes),
        more_max=lay.get("more_max", int, Layout.more_max),
        excerpt_chars=lay.positive("excerpt_chars", int, Layout.excerpt_chars),
    )
    lay.done()

    rubrics: list[Rubric] = []
    default_rubric = None
    raw_rubrics = top.get("rubrics", list, [])
    for i, entry in enumerate(raw_rubrics):
        t = _Table(entry, f"rubrics[{i}]", file)
        key = t.get("key", str, required=True)
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", key):
            raise ConfigError(f"{file}: rubrics[{i}].key {key!r} must be lowercase letters, digits, - or _")
        if any(r.key == key for r in rubrics):
            raise ConfigError(f"{file}: rubrics[{i}].key {key!r} is used twice")
        t.where = f"rubrics[{key}]"
        labels = t.get("labels", dict, {})
        for loc, label in labels.items():
            check_locale(loc, f"{file}: rubrics[{key}].labels")
            if not isinstance(label, str):
                raise ConfigError(f"{file}: rubrics[{key}].labels.{loc} must be a string")
        color = t.get("color", str, Rubric.color)
        if not _COLOR.match(color):
            raise ConfigError(f"{file}: rubrics[{key}].color must look like #1d3557, not {color!r}")
        rubrics.append(
            Rubric(
                key=key,
                label=t.get("label", str, required=True),
                labels=dict(labels),
                weight=t.positive("weight", float, 1.0),
                max_items=t.positive("max_items", int, Rubric.max_items),
                color=color,
                keywords=t.strings("keywords"),
                aliases=t.strings("aliases"),
            )
        )
        if t.get("default", bool, False):
            if default_rubric:
                raise ConfigError(f"{file}: rubrics[{key}].default: {default_rubric!r} is the default already")
            default_rubric = key
        t.done()
    if not rubrics:
        rubrics = [DEFAULT_RUBRIC]
    if default_rubric is None:
        default_rubric = rubrics[-1].key

    sources: list[SourceSpec] = []
    for i, entry in enumerate(top.get("sources", list, [])):
        t = _Table(entry, f"sources[{i}]", file)
        name = t.get("name", str, required=True)
        t.where = f"sources[{name}]"
        location = t.get("url", str, None) or t.get("path", str, None)
        if not location:
            raise ConfigError(f"{file}: sources[{name}] needs a path or a url")
        if not location.startswith(("http://", "https://")):
            location = str((folder / os.path.expanduser(location)))
        kind = t.get("kind", str, None)
        if kind is not None and kind not in SOURCE_KINDS:
            from .sources import registry

            if kind not in registry():
                raise ConfigError(f"{file}: sources[{name}].kind {kind!r} is unknown", f"use one of {', '.join(registry())}")
        rubric = t.get("rubric", str, None)
        if rubric is not None and rubric not in {r.key for r in rubrics}:
            raise ConfigError(f"{file}: sources[{name}].rubric {rubric!r} is not a rubric key")
        sources.append(SourceSpec(name, location, kind, rubric, t.get("featured", bool, None)))
        t.done()

    settings = Settings(
        newsletter=newsletter,
        ranking=ranking,
        layout=layout,
        rubrics=tuple(rubrics),
        default_rubric=default_rubric,
        sources=tuple(sources),
        theme=(folder / theme) if theme else None,
        fetch_timeout=top.positive("fetch_timeout", float, 10.0),
        path=Path(file),
    )
    top.done()
    return settings


def with_overrides(settings: Settings, timezone: str | None = None, locale: str | None = None) -> Settings:
    """Apply command-line options (already read from DIGEST_* variables by Click) over the file."""
    news = settings.newsletter
    if timezone:
        news = replace(news, timezone=check_timezone(timezone))
    if locale:
        news = replace(news, locale=check_locale(locale, "--locale"))
    return replace(settings, newsletter=news)
