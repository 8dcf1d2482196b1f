"""Set-up for delivery tests: a newsroom in a temporary folder, with subscribers, a config file and
settings pointing at a real SMTP server or an outbox."""
from __future__ import annotations

import email
import os
import subprocess
import sys
from dataclasses import replace
from email import policy
from pathlib import Path

from conftest import DAY, EXAMPLES, ROOT

from digest.core.config import Delivery, Smtp, load
from digest.pipeline.edition import prepare
from subscribers.store import Store
from subscribers.tokens import Tokens, load_keys

RUBRIC_CHOICES = [frozenset(), frozenset({"economie", "sport"}), frozenset({"politique"}), frozenset({"culture", "societe"})]
LOCALES = ["fr", "en", "ar"]


def config_text(tmp: Path, smtp: str = "", delivery: str = "") -> str:
    """examples/digest.toml with absolute source paths and the store, key and outbox in `tmp`."""
    text = (EXAMPLES / "digest.toml").read_text(encoding="utf-8")
    text = text.replace('path = "', f'path = "{EXAMPLES}/')
    text = text.replace('database = "digest.db"', f'database = "{tmp / "digest.db"}"')
    text = text.replace('secret_file = "digest.key"', f'secret_file = "{tmp / "digest.key"}"')
    text = text.replace('outbox = "outbox"', f'outbox = "{tmp / "outbox"}"')
    text = text.replace("retry_base_seconds = 2\n", "retry_base_seconds = 0.05\n" + delivery + "\n")
    if smtp:
        text += f"\n[smtp]\n{smtp}\n"
    return text


class Newsroom:
    def __init__(self, tmp: Path, subscribers: int = 12, smtp: str = "", delivery: str = "") -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.config = tmp / "digest.toml"
        self.config.write_text(config_text(tmp, smtp, delivery), encoding="utf-8")
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

    def with_smtp(self, port: int, **fields) -> None:
        fields.setdefault("tls", "none")
        fields.setdefault("connections", 2)
        # deadline_seconds and timeout_seconds keep their defaults (60 s, 30 s): on a machine whose cores
        # are busy, a message to a local server can take seconds; a test of the deadline sets its own.
        self.settings = replace(self.settings, smtp=Smtp(host="127.0.0.1", port=port, **fields))

    def with_delivery(self, **fields) -> None:
        self.settings = replace(self.settings, delivery=replace(self.settings.delivery, **fields))

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

        from digest.delivery import schema
        from digest.delivery.schema import deliveries

        schema.create(self.store.engine)  # a database no send has touched has no ledger yet: no rows
        with self.store.engine.connect() as conn:
            return dict(conn.execute(select(deliveries.c.subscriber_id, deliveries.c.status)).all())

    def cli(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "digest", *args, "-c", str(self.config), "--date", DAY.isoformat()],
            capture_output=True, text=True, cwd=ROOT, timeout=timeout, env={**os.environ, **(env or {})},
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def popen(self, *args: str) -> subprocess.Popen:
        """`digest …` running: the caller ends it with communicate(), which also closes its pipes."""
        return subprocess.Popen(
            [sys.executable, "-m", "digest", *args, "-c", str(self.config), "--date", DAY.isoformat()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )


def parse(data: bytes):
    return email.message_from_bytes(data, policy=policy.default)


__all__ = ["Newsroom", "parse", "Delivery"]
