"""digest.toml (and DIGEST_* variables) → typed, frozen settings; every error names file and key."""
from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError

from digest.core.errors import ConfigError

LOCALES = ("fr", "en", "ar")
SOURCE_KINDS = ("pagedump", "feed", "markdown")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
TOP = "(top level)"
# The tables digest.toml may hold (a table absent from a file is never read, so it is listed here).
TABLES = ("newsletter", "ranking", "layout", "rubrics", "sources", "subscribers", "delivery", "archive", "smtp",
          "dkim", "fetch_timeout")


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
    unsubscribe_mailto: str | None = None  # an address that unsubscribes whoever writes to it
    logo: str | None = None  # an https URL of the masthead logo; its alt text is the newsletter's name
    logo_width: int = 180


@dataclass(frozen=True)
class Smtp:
    """The relay to deliver through. Without an [smtp] table, messages go to the outbox folder."""

    host: str
    port: int = 587
    tls: str = "starttls"  # "starttls" (required, not opportunistic), "implicit" (port 465) or "none" (loopback only)
    username: str | None = None
    # The password is read from an environment variable or a file when `digest send` connects, never
    # from digest.toml itself, so `build` and `serve` run without it; it is never printed.
    password_env: str | None = None
    password_file: Path | None = None
    connections: int = 4
    messages_per_connection: int = 100
    rate: float = 0.0  # messages per second over all connections; 0: as fast as the server takes them
    deadline_seconds: float = 60.0  # for one whole message, connection to last reply
    timeout_seconds: float = 30.0  # for one socket operation
    local_hostname: str = "localhost"
    envelope_from: str | None = None  # the return path; default: the sender's address

    def resolve_password(self) -> str:
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"smtp.password_env names {self.password_env}, which is not set in this environment")
            return value
        if self.password_file:
            try:
                return self.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"smtp.password_file: cannot read {self.password_file}: {exc.strerror or exc}") from None
        return ""


@dataclass(frozen=True)
class Delivery:
    outbox: Path = Path("outbox")
    retries: int = 3  # attempts in one run for a 4xx or a dropped connection, then deferred to the next run
    retry_base_seconds: float = 2.0  # backoff: base × 2^(attempt−1), with jitter
    retry_later_minutes: float = 30.0  # a message deferred at the end of a run is due again after this


@dataclass(frozen=True)
class Dkim:
    domain: str
    selector: str
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class Settings:
    newsletter: Newsletter = field(default_factory=Newsletter)
    ranking: Ranking = field(default_factory=Ranking)
    layout: Layout = field(default_factory=Layout)
    rubrics: tuple[Rubric, ...] = ()
    default_rubric: str = "actualite"
    sources: tuple[SourceSpec, ...] = ()
    theme: Path | None = None  # a folder whose templates override the built-in ones
    database: str = "digest.db"  # a path or a SQLAlchemy URL
    secret_file: Path = Path("digest.key")  # token keys, made on first use when no DIGEST_SECRET is set
    smtp: Smtp | None = None
    delivery: Delivery = field(default_factory=Delivery)
    dkim: Dkim | None = None
    archive: Path = Path("archive")  # the web archive: one page per edition, served by `digest serve`
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

    def done(self, known: tuple[str, ...] = ()) -> None:
        """Every key not read is a mistake: all of them are named at once, each with the closest
        known names (a typo in a table's name must not silently drop the whole table)."""
        names = sorted(self.seen | set(known))
        unknown = sorted(set(self.data) - set(names))
        if not unknown:
            return
        problems, unmatched = [], False
        for key in unknown:
            close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
            unmatched = unmatched or not close
            problems.append(self._describe(key) + (f" (did you mean {_or(close)}?)" if close else ""))
        hint = f"known here: {', '.join(names)}" if unmatched and names else None
        raise ConfigError(f"{self.file}: " + "; ".join(problems), hint)

    def _describe(self, key: str) -> str:
        value = self.data[key]
        if self.where == TOP:
            if isinstance(value, dict):
                return f"unknown table [{key}]"
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                return f"unknown table [[{key}]]"
            return f"unknown key {key}"
        return f"unknown key {self.where}.{key}"


def _or(names: list[str]) -> str:
    return " or ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + f" or {names[-1]}"


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
    top = _Table(raw, TOP, file)

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
        unsubscribe_mailto=n.get("unsubscribe_mailto", str, None),
        logo=n.get("logo", str, None),
        logo_width=n.positive("logo_width", int, 180),
    )
    if newsletter.logo and not newsletter.logo.startswith("https://"):
        raise ConfigError(f"{file}: newsletter.logo must be an https:// address", "email images load over https only")
    if not newsletter.base_url.startswith("https://"):
        raise ConfigError(f"{file}: newsletter.base_url must start with https://", "links in the email are https only")
    _check_header_values(newsletter, file)
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
            from digest.pipeline.sources import registry

            if kind not in registry():
                raise ConfigError(f"{file}: sources[{name}].kind {kind!r} is unknown", f"use one of {', '.join(registry())}")
        rubric = t.get("rubric", str, None)
        if rubric is not None and rubric not in {r.key for r in rubrics}:
            raise ConfigError(f"{file}: sources[{name}].rubric {rubric!r} is not a rubric key")
        sources.append(SourceSpec(name, location, kind, rubric, t.get("featured", bool, None)))
        t.done(known=("path", "url"))

    sub = _Table(top.get("subscribers", dict, {}), "subscribers", file)
    database = sub.get("database", str, "digest.db")
    if "://" not in database:
        database = str(folder / os.path.expanduser(database))
    secret_file = folder / os.path.expanduser(sub.get("secret_file", str, "digest.key"))
    sub.done()

    d = _Table(top.get("delivery", dict, {}), "delivery", file)
    delivery = Delivery(
        outbox=folder / os.path.expanduser(d.get("outbox", str, "outbox")),
        retries=d.get("retries", int, Delivery.retries),
        retry_base_seconds=d.positive("retry_base_seconds", float, Delivery.retry_base_seconds),
        retry_later_minutes=d.positive("retry_later_minutes", float, Delivery.retry_later_minutes),
    )
    if delivery.retries < 1:
        raise ConfigError(f"{file}: delivery.retries must be at least 1")
    d.done()

    arc = _Table(top.get("archive", dict, {}), "archive", file)
    archive = folder / os.path.expanduser(arc.get("folder", str, "archive"))
    arc.done()

    smtp = _smtp(top.get("smtp", dict, None), file, folder) if "smtp" in raw else None
    dkim = _dkim(top.get("dkim", dict, None), file, folder) if "dkim" in raw else None

    settings = Settings(
        newsletter=newsletter,
        ranking=ranking,
        layout=layout,
        rubrics=tuple(rubrics),
        default_rubric=default_rubric,
        sources=tuple(sources),
        theme=(folder / theme) if theme else None,
        database=database,
        secret_file=secret_file,
        smtp=smtp,
        delivery=delivery,
        dkim=dkim,
        archive=archive,
        fetch_timeout=top.positive("fetch_timeout", float, 10.0),
        path=Path(file),
    )
    top.done(known=TABLES)
    return settings


_URL_UNSAFE = re.compile(r"[\s<>\"'\\^`{|}\x00-\x1f\x7f]")
_LIST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+")
_MAILBOX = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def _check_header_values(news: Newsletter, file: str) -> None:
    """Values that end up inside mail headers (List-Unsubscribe, List-Id, Reply-To) are checked
    here, once: a space, a line break or an angle bracket in them could forge a header."""
    from urllib.parse import urlsplit

    parts = urlsplit(news.base_url)
    if _URL_UNSAFE.search(news.base_url) or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{file}: newsletter.base_url {news.base_url!r} is not a plain https URL",
                          "write it like https://news.example.ma/digest, with no spaces, query or fragment")
    if not _LIST_ID.fullmatch(news.list_id):
        raise ConfigError(f"{file}: newsletter.list_id {news.list_id!r} must look like a domain name",
                          "for example quotidien.news.example.ma")
    for key in ("unsubscribe_mailto", "reply_to"):
        value = getattr(news, key)
        if value is not None and not _MAILBOX.fullmatch(value):
            raise ConfigError(f"{file}: newsletter.{key} {value!r} must be a plain address like unsubscribe@news.example.ma")


def _secret(t: _Table, key: str, file: str, folder: Path) -> str | None:
    """A secret comes from an environment variable (`<key>_env`) or a file (`<key>_file`), never
    from digest.toml itself, and is never printed."""
    env_name = t.get(f"{key}_env", str, None)
    path = t.get(f"{key}_file", str, None)
    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            raise ConfigError(f"{file}: {t.where}.{key}_env names {env_name}, which is not set")
        return value
    if path:
        try:
            return (folder / os.path.expanduser(path)).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{file}: {t.where}.{key}_file: cannot read {path}: {exc.strerror or exc}") from None
    return None


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _smtp(data: Any, file: str, folder: Path) -> Smtp:
    t = _Table(data, "smtp", file)
    tls = t.get("tls", str, "starttls")
    if tls not in ("starttls", "implicit", "none"):
        raise ConfigError(f"{file}: smtp.tls must be starttls, implicit or none, not {tls!r}")
    smtp = Smtp(
        host=t.get("host", str, required=True),
        port=t.get("port", int, 465 if tls == "implicit" else 587),
        tls=tls,
        username=t.get("username", str, None),
        password_env=t.get("password_env", str, None),
        password_file=(folder / os.path.expanduser(t.get("password_file", str))) if "password_file" in t.data else None,
        connections=t.positive("connections", int, Smtp.connections),
        messages_per_connection=t.positive("messages_per_connection", int, Smtp.messages_per_connection),
        rate=t.get("rate", float, 0.0),
        deadline_seconds=t.positive("deadline_seconds", float, Smtp.deadline_seconds),
        timeout_seconds=t.positive("timeout_seconds", float, Smtp.timeout_seconds),
        local_hostname=t.get("local_hostname", str, "localhost"),
        envelope_from=t.get("envelope_from", str, None),
    )
    if tls == "none" and not _is_loopback(smtp.host):
        raise ConfigError(
            f"{file}: smtp.tls = \"none\" is only allowed for a server on this machine (127.0.0.1, ::1, localhost)",
            "use starttls (port 587) or implicit (port 465)",
        )
    if smtp.username and not (smtp.password_env or smtp.password_file):
        raise ConfigError(f"{file}: smtp.username is set but no password_env or password_file")
    if smtp.rate < 0:
        raise ConfigError(f"{file}: smtp.rate must be 0 (no limit) or more")
    t.done(known=("password_file",))
    return smtp


def _dkim(data: Any, file: str, folder: Path) -> Dkim:
    t = _Table(data, "dkim", file)
    domain = t.get("domain", str, required=True)
    selector = t.get("selector", str, required=True)
    key = _secret(t, "key", file, folder)
    if not key:
        raise ConfigError(f"{file}: dkim needs key_file or key_env (a PEM private key)")
    t.done()
    return Dkim(domain=domain, selector=selector, key=key.encode())


def config_path(given: str | Path | None) -> Path | None:
    """The configuration every command reads: -c (or DIGEST_CONFIG), else ./digest.toml when there
    is one, else none (the built-in defaults)."""
    if given:
        return Path(given)
    return Path("digest.toml") if Path("digest.toml").is_file() else None


def find(given: str | Path | None) -> Settings:
    path = config_path(given)
    return load(path) if path else defaults()


def edition_day(value: str | None, settings: Settings) -> date:
    """--date: YYYY-MM-DD, 'today' or 'yesterday', in the newsroom's time zone (default today)."""
    today = datetime.now(ZoneInfo(settings.newsletter.timezone)).date()
    if value in (None, "", "today"):
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--date: {value!r} is not a date", "write it as YYYY-MM-DD, 'today' or 'yesterday'") from None


def with_overrides(settings: Settings, timezone: str | None = None, locale: str | None = None) -> Settings:
    """Apply command-line options (already read from DIGEST_* variables by Click) over the file."""
    news = settings.newsletter
    if timezone:
        news = replace(news, timezone=check_timezone(timezone))
    if locale:
        news = replace(news, locale=check_locale(locale, "--locale"))
    return replace(settings, newsletter=news)
