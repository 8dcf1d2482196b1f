"""Databases for the tests: a SQLite file in the test's folder, or a PostgreSQL database of the test's
own, made on the server of $DIGEST_TEST_POSTGRES (default: the local one .ci/run makes sure runs) and
dropped afterwards."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

SERVER = os.environ.get("DIGEST_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/postgres")
ENGINES = ("sqlite", "postgresql")


def postgres_url(name: str) -> str:
    """The SQLAlchemy URL of database `name` on the test server."""
    base = SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new empty database; its URL; dropped (its connections ended first) when the block ends."""
    name = f"digest_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url(name)
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextmanager
def fresh_database(engine: str, folder: Path) -> Iterator[str]:
    """A new empty database of the given engine: a path for SQLite, a URL for PostgreSQL."""
    if engine == "sqlite":
        yield str(folder / "digest.db")
        return
    with fresh_postgres() as url:
        yield url
