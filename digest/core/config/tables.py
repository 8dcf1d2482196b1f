"""One reader per table of digest.toml: each takes its Table, checks every key and returns its dataclass.

A key left out takes the dataclass field's default (model.py is the one place defaults are written);
relative paths are resolved against the folder of digest.toml.
"""
from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from digest.core.config.model import (
    DEFAULT_RUBRIC,
    Bounces,
    Delivery,
    Dkim,
    Layout,
    Newsletter,
    Ranking,
    Rubric,
    Signup,
    Smtp,
    SourceSpec,
)
from digest.core.config.secrets import read_secret
from digest.core.config.table import Table
from digest.core.errors import ConfigError
from digest.core.locales import LOCALES, hour, locale, zone

# The source kinds digest reads itself (digest.pipeline.sources registers a reader for each); others
# come from the `digest.sources` entry-point group.
SOURCE_KINDS = ("pagedump", "feed", "markdown")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_RUBRIC_KEY = re.compile(r"[a-z0-9][a-z0-9_-]*")
_URL_UNSAFE = re.compile(r"[\s<>\"'\\^`{|}\x00-\x1f\x7f]")
_LIST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+")
_MAILBOX = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def check_timezone(name: str, where: str = "--timezone") -> str:
    if zone(name) != name:
        raise ConfigError(f"{where}: unknown time zone {name!r}", "use an IANA name such as Africa/Casablanca")
    return name


def check_locale(name: str, where: str) -> str:
    """One of LOCALES, or one with a region babel knows (ar-MA, en-GB): written back as BCP 47."""
    found = locale(name)
    if found is not None:
        return found
    from babel import Locale, UnknownLocaleError  # noqa: PLC0415 — babel only for a locale the table does not know

    try:
        Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        raise ConfigError(f"{where}: unknown locale {name!r}", f"use one of {', '.join(LOCALES)} (with a region: ar-MA)") from None
    raise ConfigError(f"{where}: locale {name!r} has no translation", f"use one of {', '.join(LOCALES)} (with a region: ar-MA)")


def check_language(name: str, where: str) -> str:
    """The language a source writes in: any language babel knows (es, de …), not only those with a catalog."""
    if name in LOCALES:  # those of the catalogs, known without babel's data
        return name
    from babel import Locale, UnknownLocaleError  # noqa: PLC0415 — babel only where a source names a language

    try:
        parsed = Locale.parse(name.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        raise ConfigError(f"{where}: unknown language {name!r}", "use a language code such as fr, en, ar or es") from None
    return parsed.language


def local_path(folder: Path, value: str) -> Path:
    return folder / os.path.expanduser(value)


def newsletter(t: Table) -> tuple[Newsletter, str | None]:
    """The [newsletter] table, and its `theme` (a folder, resolved by the caller)."""
    news = Newsletter(
        name=t.get("name", str, Newsletter.name),
        sender=t.get("sender", str, Newsletter.sender),
        reply_to=t.get("reply_to", str, Newsletter.reply_to),
        base_url=t.get("base_url", str, Newsletter.base_url).rstrip("/"),
        postal_address=t.get("postal_address", str, Newsletter.postal_address),
        locale=check_locale(t.get("locale", str, Newsletter.locale), f"{t.file}: newsletter.locale"),
        timezone=check_timezone(t.get("timezone", str, Newsletter.timezone), f"{t.file}: newsletter.timezone"),
        list_id=t.get("list_id", str, Newsletter.list_id),
        unsubscribe_mailto=t.get("unsubscribe_mailto", str, Newsletter.unsubscribe_mailto),
        logo=t.get("logo", str, Newsletter.logo),
        logo_width=t.positive("logo_width", int, Newsletter.logo_width),
        logo_height=t.positive("logo_height", int, None) if "logo_height" in t.data else None,
        subject_brand=t.get("subject_brand", bool, Newsletter.subject_brand),
    )
    if news.logo and not news.logo.startswith("https://"):
        raise ConfigError(f"{t.file}: newsletter.logo must be an https:// address", "email images load over https only")
    if not news.base_url.startswith("https://"):
        raise ConfigError(f"{t.file}: newsletter.base_url must start with https://", "links in the email are https only")
    _check_header_values(news, t.file)
    theme = t.get("theme", str, None)
    t.done()
    return news, theme


def _check_header_values(news: Newsletter, file: str) -> None:
    """Values that end up inside mail headers (List-Unsubscribe, List-Id, Reply-To) are checked
    here, once: a space, a line break or an angle bracket in them could forge a header."""
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


def ranking(t: Table) -> Ranking:
    value = Ranking(
        half_life_hours=t.positive("half_life_hours", float, Ranking.half_life_hours),
        featured_boost=t.positive("featured_boost", float, Ranking.featured_boost),
        leads=t.get("leads", int, Ranking.leads),
        title_similarity=t.positive("title_similarity", float, Ranking.title_similarity),
        weekly_half_life_hours=t.positive("weekly_half_life_hours", float, Ranking.weekly_half_life_hours),
        weekly_leads=t.get("weekly_leads", int, Ranking.weekly_leads),
    )
    if value.leads < 0 or value.weekly_leads < 0 or not 0 < value.title_similarity <= 1:
        raise ConfigError(f"{t.file}: ranking.leads must be ≥ 0 and ranking.title_similarity in (0, 1]")
    t.done()
    return value


def layout(t: Table) -> Layout:
    value = Layout(
        budget_bytes=t.positive("budget_bytes", int, Layout.budget_bytes),
        more_max=t.get("more_max", int, Layout.more_max),
        excerpt_chars=t.positive("excerpt_chars", int, Layout.excerpt_chars),
    )
    t.done()
    return value


def rubrics(entries: list[Any], file: str) -> tuple[tuple[Rubric, ...], str]:
    """The [[rubrics]] in display order, and the default rubric's key (the one marked `default`,
    else the last); without any, the built-in "Actualité"."""
    found: list[Rubric] = []
    default: str | None = None
    for i, entry in enumerate(entries):
        t = Table(entry, f"rubrics[{i}]", file)
        key = t.get("key", str, required=True)
        if not _RUBRIC_KEY.fullmatch(key):
            raise ConfigError(f"{file}: rubrics[{i}].key {key!r} must be lowercase letters, digits, - or _")
        if any(r.key == key for r in found):
            raise ConfigError(f"{file}: rubrics[{i}].key {key!r} is used twice")
        t.where = f"rubrics[{key}]"
        found.append(_rubric(t, key))
        if t.get("default", bool, False):
            if default:
                raise ConfigError(f"{file}: rubrics[{key}].default: {default!r} is the default already")
            default = key
        t.done()
    if not found:
        return (DEFAULT_RUBRIC,), DEFAULT_RUBRIC.key
    return tuple(found), default or found[-1].key


def _rubric(t: Table, key: str) -> Rubric:
    labels = t.get("labels", dict, {})
    for loc, label in labels.items():
        check_locale(loc, f"{t.file}: rubrics[{key}].labels")
        if not isinstance(label, str):
            raise ConfigError(f"{t.file}: rubrics[{key}].labels.{loc} must be a string")
    color = t.get("color", str, Rubric.color)
    if not _COLOR.match(color):
        raise ConfigError(f"{t.file}: rubrics[{key}].color must look like #1d3557, not {color!r}")
    return Rubric(
        key=key,
        label=t.get("label", str, required=True),
        labels=dict(labels),
        weight=t.positive("weight", float, Rubric.weight),
        max_items=t.positive("max_items", int, Rubric.max_items),
        color=color,
        keywords=t.strings("keywords"),
        aliases=t.strings("aliases"),
    )


def source_kinds() -> tuple[str, ...]:
    """Every kind a source may name: digest's own and those plugged in through entry points."""
    from importlib.metadata import entry_points  # noqa: PLC0415 — 40 ms to import, only where sources are read

    plugged = tuple(ep.name for ep in entry_points(group="digest.sources") if ep.name not in SOURCE_KINDS)
    return SOURCE_KINDS + plugged


def sources(entries: list[Any], file: str, folder: Path, rubric_keys: set[str]) -> tuple[SourceSpec, ...]:
    found: list[SourceSpec] = []
    for i, entry in enumerate(entries):
        t = Table(entry, f"sources[{i}]", file)
        name = t.get("name", str, required=True)
        t.where = f"sources[{name}]"
        location = t.get("url", str, None) or t.get("path", str, None)
        if not location:
            raise ConfigError(f"{file}: sources[{name}] needs a path or a url")
        if not location.startswith(("http://", "https://")):
            location = str(local_path(folder, location))
        kind = t.get("kind", str, None)
        if kind is not None and kind not in SOURCE_KINDS and kind not in source_kinds():  # entry points: 90 ms
            raise ConfigError(f"{file}: sources[{name}].kind {kind!r} is unknown", f"use one of {', '.join(source_kinds())}")
        rubric = t.get("rubric", str, None)
        if rubric is not None and rubric not in rubric_keys:
            raise ConfigError(f"{file}: sources[{name}].rubric {rubric!r} is not a rubric key")
        lang = t.get("lang", str, None)
        if lang is not None:
            lang = check_language(lang, f"{file}: sources[{name}].lang")
        found.append(SourceSpec(name, location, kind, rubric, t.get("featured", bool, None), lang))
        t.done(known=("path", "url"))
    return tuple(found)


def subscribers(t: Table, folder: Path) -> tuple[str, Path]:
    """The database (a path resolved here, or a SQLAlchemy URL as it is) and the signing-key file."""
    database = t.get("database", str, "digest.db")
    if "://" not in database:
        database = str(local_path(folder, database))
    secret_file = local_path(folder, t.get("secret_file", str, "digest.key"))
    t.done()
    return database, secret_file


def delivery(t: Table, folder: Path) -> Delivery:
    value = Delivery(
        transport=t.get("transport", str, Delivery.transport),  # checked against the registry when sending
        outbox=local_path(folder, t.get("outbox", str, str(Delivery.outbox))),
        retries=t.get("retries", int, Delivery.retries),
        retry_base_seconds=t.positive("retry_base_seconds", float, Delivery.retry_base_seconds),
        retry_later_minutes=t.positive("retry_later_minutes", float, Delivery.retry_later_minutes),
        local_time=t.get("local_time", str, Delivery.local_time),
        lease_seconds=t.positive("lease_seconds", float, Delivery.lease_seconds),
        poll_seconds=t.positive("poll_seconds", float, Delivery.poll_seconds),
        weekly_day=t.weekday("weekly_day", Delivery.weekly_day),
        keep_items_days=t.get("keep_items_days", int, Delivery.keep_items_days),
    )
    if value.keep_items_days < 8:
        raise ConfigError(f"{t.file}: delivery.keep_items_days must be at least 8 (a week of items, and its day)")
    if value.retries < 1:
        raise ConfigError(f"{t.file}: delivery.retries must be at least 1")
    if value.local_time is not None and hour(value.local_time) != value.local_time:  # "07:00", as the schedule reads it
        raise ConfigError(f"{t.file}: delivery.local_time must be an hour like \"07:00\", not {value.local_time!r}")
    t.done()
    return value


def signup(t: Table) -> Signup:
    value = Signup(
        enabled=t.get("enabled", bool, Signup.enabled),
        allowed_origins=tuple(_origin(o, t.file) for o in t.strings("allowed_origins")),
        per_address_per_day=t.positive("per_address_per_day", int, Signup.per_address_per_day),
        per_network_per_hour=t.positive("per_network_per_hour", int, Signup.per_network_per_hour),
        per_domain_per_hour=t.positive("per_domain_per_hour", int, Signup.per_domain_per_hour),
        min_seconds=t.get("min_seconds", float, Signup.min_seconds),
        block_disposable=t.get("block_disposable", bool, Signup.block_disposable),
        blocked_domains=tuple(d.lower().strip(".") for d in t.strings("blocked_domains")),
        consent_version=t.get("consent_version", str, Signup.consent_version).strip(),
        privacy_url=t.get("privacy_url", str, Signup.privacy_url),
    )
    if not 0 <= value.min_seconds <= 3600:
        raise ConfigError(f"{t.file}: signup.min_seconds must be from 0 to 3600 seconds")
    if not value.consent_version or len(value.consent_version) > 64 or not value.consent_version.isprintable():
        raise ConfigError(f"{t.file}: signup.consent_version must be a short label such as \"2026-11\"")
    if value.privacy_url is not None and (not value.privacy_url.startswith("https://") or _URL_UNSAFE.search(value.privacy_url)):
        raise ConfigError(f"{t.file}: signup.privacy_url must be a plain https:// address")
    t.done()
    return value


def _origin(value: str, file: str) -> str:
    """A site as a browser names it in Origin: scheme://host[:port], nothing after it."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/") or parts.query \
            or parts.fragment or parts.username or _URL_UNSAFE.search(value):
        raise ConfigError(f"{file}: signup.allowed_origins: {value!r} is not a site's origin",
                          "write it like https://www.lequotidien.example.ma (no path)")
    return value.rstrip("/").lower()


def archive(t: Table, folder: Path) -> Path:
    path = local_path(folder, t.get("folder", str, "archive"))
    t.done()
    return path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def smtp(t: Table, folder: Path) -> Smtp:
    tls = t.get("tls", str, Smtp.tls)
    if tls not in ("starttls", "implicit", "none"):
        raise ConfigError(f"{t.file}: smtp.tls must be starttls, implicit or none, not {tls!r}")
    password_file = t.get("password_file", str, None)
    value = Smtp(
        host=t.get("host", str, required=True),
        port=t.get("port", int, 465 if tls == "implicit" else Smtp.port),
        tls=tls,
        username=t.get("username", str, Smtp.username),
        password_env=t.get("password_env", str, Smtp.password_env),
        password_file=local_path(folder, password_file) if password_file else None,
        connections=t.positive("connections", int, Smtp.connections),
        messages_per_connection=t.positive("messages_per_connection", int, Smtp.messages_per_connection),
        rate=t.get("rate", float, Smtp.rate),
        deadline_seconds=t.positive("deadline_seconds", float, Smtp.deadline_seconds),
        timeout_seconds=t.positive("timeout_seconds", float, Smtp.timeout_seconds),
        local_hostname=t.get("local_hostname", str, Smtp.local_hostname),
        envelope_from=t.get("envelope_from", str, Smtp.envelope_from),
    )
    if tls == "none" and not _is_loopback(value.host):
        raise ConfigError(
            f"{t.file}: smtp.tls = \"none\" is only allowed for a server on this machine (127.0.0.1, ::1, localhost)",
            "use starttls (port 587) or implicit (port 465)",
        )
    if value.username and not (value.password_env or value.password_file):
        raise ConfigError(f"{t.file}: smtp.username is set but no password_env or password_file")
    if value.rate < 0:
        raise ConfigError(f"{t.file}: smtp.rate must be 0 (no limit) or more")
    t.done()
    return value


def dkim(t: Table, folder: Path) -> Dkim:
    domain = t.get("domain", str, required=True)
    selector = t.get("selector", str, required=True)
    key_file = t.get("key_file", str, None)
    try:
        key = read_secret(t.get("key_env", str, None), local_path(folder, key_file) if key_file else None, "dkim.key")
    except ConfigError as exc:
        raise ConfigError(f"{t.file}: {exc.message}") from None
    if not key:
        raise ConfigError(f"{t.file}: dkim needs key_file or key_env (a PEM private key)")
    t.done()
    return Dkim(domain=domain, selector=selector, key=key.encode())


_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+)*")


def bounces(t: Table, folder: Path) -> Bounces:
    """The [bounces] table: the VERP domain, the complaints address, the soft-bounce score, the IMAP box."""
    tls = t.get("imap_tls", str, Bounces.imap_tls)
    if tls not in ("implicit", "starttls", "none"):
        raise ConfigError(f"{t.file}: bounces.imap_tls must be implicit, starttls or none, not {tls!r}")
    password_file = t.get("imap_password_file", str, None)
    keep = t.get("keep_unattributed", str, None)
    value = Bounces(
        domain=t.get("domain", str, required=True).strip().lower(),
        local_part=t.get("local_part", str, Bounces.local_part),
        complaints_address=t.get("complaints_address", str, Bounces.complaints_address),
        soft_threshold=t.positive("soft_threshold", float, Bounces.soft_threshold),
        soft_half_life_days=t.positive("soft_half_life_days", float, Bounces.soft_half_life_days),
        imap_host=t.get("imap_host", str, Bounces.imap_host),
        imap_port=t.get("imap_port", int, 993 if tls == "implicit" else 143),
        imap_tls=tls,
        imap_username=t.get("imap_username", str, Bounces.imap_username),
        imap_password_env=t.get("imap_password_env", str, Bounces.imap_password_env),
        imap_password_file=local_path(folder, password_file) if password_file else None,
        imap_mailbox=t.get("imap_mailbox", str, Bounces.imap_mailbox),
        imap_processed=t.get("imap_processed", str, Bounces.imap_processed),
        keep_unattributed=local_path(folder, keep) if keep else None,
    )
    # Both end up in every message's return path and headers: a space or a line break there forges one.
    if not _DOMAIN.fullmatch(value.domain):
        raise ConfigError(f"{t.file}: bounces.domain {value.domain!r} must be a domain name like bounces.example.ma")
    if not _LOCAL.fullmatch(value.local_part) or len(value.local_part) > 20:
        raise ConfigError(f"{t.file}: bounces.local_part {value.local_part!r} must be a plain local part of at most "
                          "20 characters, without '+' (the tag follows it)")
    if value.complaints_address is not None and not _MAILBOX.fullmatch(value.complaints_address):
        raise ConfigError(f"{t.file}: bounces.complaints_address {value.complaints_address!r} must be a plain address "
                          "like fbl@news.example.ma")
    if value.imap_host is not None:
        if tls == "none" and not _is_loopback(value.imap_host):
            raise ConfigError(f"{t.file}: bounces.imap_tls = \"none\" is only allowed for a server on this machine",
                              "use implicit (port 993) or starttls (port 143)")
        if not value.imap_username or not (value.imap_password_env or value.imap_password_file):
            raise ConfigError(f"{t.file}: bounces.imap_host needs imap_username and imap_password_env or imap_password_file")
    t.done()
    return value
