"""A newsroom in a temporary folder for delivery tests: subscribers, a config file and settings pointing
at a real SMTP server or an outbox, and `digest …` run against it."""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sqlalchemy import update

from digest.core.config import Smtp, load
from digest.pipeline.edition import prepare
from subscribers.schema import subscribers
from subscribers.store import Store
from subscribers.tokens import Tokens, load_keys

from support import cli as commands
from support.paths import DAY, EXAMPLES

# Where examples/digest.toml's base_url puts the newsroom's pages: the site, and the path under it.
SITE = "https://lequotidien.example.ma"
PREFIX = "/digest"
BASE_URL = SITE + PREFIX

RUBRIC_CHOICES = [frozenset(), frozenset({"economie", "sport"}), frozenset({"politique"}), frozenset({"culture", "societe"})]
LOCALES = ["fr", "en", "ar"]


def config_text(tmp: Path, smtp: str = "", delivery: str = "", database: str | None = None) -> str:
    """examples/digest.toml with absolute source paths and the key and outbox in `tmp`; the store in
    `tmp` too, unless `database` names another (a PostgreSQL URL)."""
    text = (EXAMPLES / "digest.toml").read_text(encoding="utf-8")
    text = text.replace('path = "', f'path = "{EXAMPLES}/')
    text = text.replace('database = "digest.db"', f'database = "{database or tmp / "digest.db"}"')
    text = text.replace('secret_file = "digest.key"', f'secret_file = "{tmp / "digest.key"}"')
    text = text.replace('outbox = "outbox"', f'outbox = "{tmp / "outbox"}"')
    text = text.replace("retry_base_seconds = 2\n", "retry_base_seconds = 0.05\n" + delivery + "\n")
    if smtp:
        text += f"\n[smtp]\n{smtp}\n"
    return text


class Newsroom:
    """The example newsroom in `tmp`, with `subscribers` readers (reader0000@example.com, …) in its store:
    locales and rubric choices in turn from LOCALES and RUBRIC_CHOICES. The store is a SQLite file in
    `tmp`, or the `database` given (a path or a PostgreSQL URL: the `database` fixture's)."""

    def __init__(self, tmp: Path, subscribers: int = 12, smtp: str = "", delivery: str = "",
                 database: str | None = None) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.config = tmp / "digest.toml"
        self.config.write_text(config_text(tmp, smtp, delivery, database), encoding="utf-8")
        self.settings = load(self.config)
        self.store = Store.open(self.settings.database)
        self.emails: list[str] = []
        with self.store.bulk() as tx:
            for i in range(subscribers):
                address = f"reader{i:04d}@example.com"
                tx.add(address, name=f"Lecteur {i}", locale=LOCALES[i % 3], timezone="Africa/Casablanca",
                               rubrics=RUBRIC_CHOICES[i % len(RUBRIC_CHOICES)])
                self.emails.append(address)
        keys, current = load_keys(self.settings.secret_file)
        self.tokens = Tokens(keys, current, self.settings.newsletter.list_id)
        self._day_edition = None

    def add_reader(self, name: str, zone: str, hour: str | None = None) -> str:
        """A reader of French in `zone` (NAME@example.com), who chose `hour` ("HH:MM", "asap") to get
        the edition, as the preferences page keeps it; their address."""
        address = f"{name}@example.com"
        self.store.add(address, name=name.title(), locale="fr", timezone=zone)
        if hour:
            with self.store.engine.begin() as conn:
                conn.execute(update(subscribers).where(subscribers.c.email == address).values(delivery_time=hour))
        self.emails.append(address)
        return address

    def with_smtp(self, port: int, **fields) -> None:
        fields.setdefault("tls", "none")
        fields.setdefault("connections", 2)
        # deadline_seconds and timeout_seconds keep their defaults (60 s, 30 s): on a machine whose cores
        # are busy, a message to a local server can take seconds; a test of the deadline sets its own.
        self.settings = replace(self.settings, smtp=Smtp(host="127.0.0.1", port=port, **fields))

    def with_delivery(self, **fields) -> None:
        self.settings = replace(self.settings, delivery=replace(self.settings.delivery, **fields))

    def edit_config(self, edit: Callable[[str], str]) -> None:
        """Rewrite digest.toml with `edit` and read it again: the command and the settings agree."""
        self.config.write_text(edit(self.config.read_text(encoding="utf-8")), encoding="utf-8")
        self.settings = load(self.config)

    def own_sources(self) -> Path:
        """The example's sources copied into the newsroom's folder, and digest.toml reading them there:
        a test may change or delete them. The folder that holds them."""
        folder = self.tmp / "news"
        for part in ("sources", "features"):
            shutil.copytree(EXAMPLES / part, folder / part)
        self.edit_config(lambda text: text.replace(f'path = "{EXAMPLES}/', f'path = "{folder}/'))
        return folder

    def with_theme(self, theme: Path) -> None:
        """Render with the theme folder `theme` (the example's commented-out `theme` line, set)."""
        self.edit_config(lambda text: text.replace('# theme = "theme"', f'theme = "{theme}"'))

    @property
    def day_edition(self):
        if self._day_edition is None:
            self._day_edition = prepare(self.settings, DAY)
        return self._day_edition

    def sender(self, **kwargs):
        from digest.delivery.send import Sender

        return Sender(self.settings, self.day_edition, self.store, self.tokens, **kwargs)

    def ledger_rows(self) -> dict[int, str]:
        from sqlalchemy import select

        from digest.delivery.schema import deliveries

        with self.store.engine.connect() as conn:
            return dict(conn.execute(select(deliveries.c.subscriber_id, deliveries.c.status)).all())

    def cli(self, *args: str, timeout: float = commands.TIMEOUT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """`digest ARGS -c <this newsroom's config> --date <the reference day>`, run to its end."""
        return commands.digest(*args, "-c", str(self.config), "--date", DAY.isoformat(), timeout=timeout, env=env)

    def popen(self, *args: str) -> subprocess.Popen:
        """`digest …` running: the caller ends it with communicate(), which also closes its pipes."""
        return commands.popen("-m", "digest", *args, "-c", str(self.config), "--date", DAY.isoformat())


def sid(room: Newsroom, i: int = 0) -> int:
    """The store's id of the room's i-th reader."""
    return room.store.get(room.emails[i]).id
