"""The settings as the rest of digest sees them: frozen dataclasses, one per table of digest.toml.

Each default is written once, here: the loader reads a key that is absent as the field's default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from digest.core.config.secrets import read_secret


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
        """The label in a locale; a regional one (en-GB) falls back to its language's (en)."""
        return self.labels.get(locale) or self.labels.get(locale.split("-", 1)[0], self.label)


@dataclass(frozen=True)
class Ranking:
    half_life_hours: float = 6.0
    featured_boost: float = 1.5
    leads: int = 1
    title_similarity: float = 0.9  # near-identical titles above this ratio are one story
    # The weekly edition: freshness counted within the week (a Monday story is not worth nothing on
    # Sunday), and the week's lead stories on top.
    weekly_half_life_hours: float = 72.0
    weekly_leads: int = 3


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
    lang: str | None = None  # the language its items are written in; None: detected per item

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
    locale: str = "fr"  # fr, en, ar, or with a region (ar-MA, en-GB) for its month names and formats
    timezone: str = "UTC"
    list_id: str = "digest.localhost"
    unsubscribe_mailto: str | None = None  # an address that unsubscribes whoever writes to it
    logo: str | None = None  # an https URL of the masthead logo; its alt text is the newsletter's name
    logo_width: int = 180
    logo_height: int | None = None  # pixels at logo_width; written on the image so Outlook keeps its box
    subject_brand: bool = False  # the subject opens with the name and the date (the From name shows the brand)


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
        """Read when `digest send` connects, so that `build` and `serve` run without it."""
        return read_secret(self.password_env, self.password_file, "smtp.password") or ""


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")  # 0 … 6


@dataclass(frozen=True)
class Delivery:
    transport: str | None = None  # a name in digest.delivery.transports; None: "smtp" with [smtp], else "outbox"
    outbox: Path = Path("outbox")
    retries: int = 3  # attempts in one run for a 4xx or a dropped connection, then deferred to the next run
    retry_base_seconds: float = 2.0  # backoff: base × 2^(attempt−1), with jitter
    retry_later_minutes: float = 30.0  # a message deferred at the end of a run is due again after this
    local_time: str | None = None  # "07:00": each reader gets the edition at that hour where they live
    lease_seconds: float = 30.0  # a worker's hold on the rows it sends, renewed while it lives
    poll_seconds: float = 15.0  # how often an idle `digest worker` looks for a newly enqueued edition
    weekly_day: int = 6  # the weekly edition's day for readers who chose none (0 Monday … 6 Sunday)
    keep_items_days: int = 400  # the store of items keeps this many days (past editions made again from it)


@dataclass(frozen=True)
class Signup:
    """Readers sign themselves up through `digest serve` (double opt-in), within these limits."""

    enabled: bool = True  # False: no sign-up form, /subscribe is a 404
    allowed_origins: tuple[str, ...] = ()  # sites whose pages may carry the form (https://www.example.ma)
    per_address_per_day: int = 3  # confirmation emails to one address in a day (UTC)
    per_network_per_hour: int = 20  # from one client network (a /24 or a /64) in an hour
    per_domain_per_hour: int = 100  # to one recipient domain in an hour
    min_seconds: float = 3.0  # a form sent back sooner than this after it was served is a robot's
    block_disposable: bool = True  # refuse the disposable-address domains of disposable-email-domains
    blocked_domains: tuple[str, ...] = ()  # more domains refused (their subdomains too)
    consent_version: str = "1"  # the version of the consent wording the form shows, on each consent row
    privacy_url: str | None = None  # the newsroom's privacy notice, linked beside the consent wording


@dataclass(frozen=True)
class Bounces:
    """Late bounces and complaints: each message's return path is `local_part+TAG@domain`, the tag
    signed and naming the edition and the reader; `digest bounces read` and `fetch` take them in."""

    domain: str  # the bounce domain: its MX (or an alias) pipes mail to `digest bounces read -`
    local_part: str = "bounces"
    complaints_address: str | None = None  # CFBL-Address (RFC 9477): where feedback loops send complaints
    soft_threshold: float = 3.0  # a reader whose soft-bounce score reaches this is bounced
    soft_half_life_days: float = 7.0  # the score halves in this time: old soft bounces fade
    imap_host: str | None = None  # `digest bounces fetch` reads this IMAP mailbox
    imap_port: int = 993
    imap_tls: str = "implicit"  # "implicit" (993), "starttls" (143), or "none" (loopback only)
    imap_username: str | None = None
    imap_password_env: str | None = None
    imap_password_file: Path | None = None
    imap_mailbox: str = "INBOX"
    imap_processed: str = "digest-processed"  # where fetched mail that was taken in is moved
    keep_unattributed: Path | None = None  # a Maildir where `read -` keeps piped mail that was not ours

    def resolve_password(self) -> str:
        return read_secret(self.imap_password_env, self.imap_password_file, "bounces.imap_password") or ""


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
    signup: Signup = field(default_factory=Signup)
    dkim: Dkim | None = None
    bounces: Bounces | None = None  # without it: the return path is fixed, no VERP, no feedback headers
    archive: Path = Path("archive")  # the web archive: one page per edition, served by `digest serve`
    fetch_timeout_seconds: float = 10.0
    path: Path | None = None  # the file these came from
    notices: tuple[str, ...] = ()  # what the loader has to say (a renamed key still in use): one line each

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
