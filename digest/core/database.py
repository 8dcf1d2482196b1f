"""The one database digest keeps (the subscribers, the delivery ledger and what later floors add): its
URL, its engine, and its schema, brought up to date by Alembic migrations whenever it is opened.

A database made before migrations existed (the tables there, no `alembic_version`) is recognised as
the first revision and carried forward from it, its rows kept. Several processes opening one database
at once (a send and `digest serve` started by the same timer, workers on several machines) migrate it
once: a lock is held while the version is checked and the steps run (an advisory lock on PostgreSQL, a
file lock beside a SQLite file).
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from digest.core.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # the schema as it stood before migrations: subscribers and deliveries
# The newest migration's revision: a database recording it is opened without loading Alembic (0.1 s of
# every command's start). tests/test_migrations.py checks it is Alembic's head.
HEAD = "0008"
_LOCK_KEY = 0x6469676573  # "diges": the advisory lock every digest process takes to migrate


def database_url(path_or_url: str | Path) -> str:
    """A SQLAlchemy URL as is; a plain file path as sqlite:///ABSOLUTE_PATH."""
    value = str(path_or_url)
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL (None for another engine or an in-memory database)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url in (prefix, prefix + ":memory:"):
        return None
    return Path(url[len(prefix):].split("?", 1)[0])


def where(engine: Engine) -> str:
    """The database as a person reads it: a file's path, or the URL without its password."""
    path = sqlite_file(str(engine.url))
    return str(path) if path is not None else make_url(str(engine.url)).render_as_string(hide_password=True)


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # busy_timeout first, so that switching to WAL waits for a busy database rather than failing.
    # WAL lets the sender write the ledger while others read; foreign keys give the ledger its cascade.
    for pragma in ("busy_timeout=5000", "journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


BULK_CACHE_KIB = 32 * 1024  # SQLite's page cache during a bulk write; its default is 2 MiB


@contextmanager
def bulk_cache(conn: Connection) -> Iterator[None]:
    """A bigger page cache on this connection for one long write (an import of a million rows) on SQLite:
    the unique index on the addresses soon outgrows the default 2 MiB, and each insert then reads its
    pages back and spills them to the WAL. Memory grows by at most BULK_CACHE_KIB; the size it had is
    put back after. Other engines: nothing to do."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    try:
        yield
    finally:
        with suppress(sa_exc.SQLAlchemyError):  # a connection that failed is thrown away by the pool anyway
            conn.exec_driver_sql(f"PRAGMA cache_size={int(before)}")


def open_engine(url: str) -> Engine:
    """An engine for the URL; a URL SQLAlchemy cannot use is a StoreError that names it."""
    try:
        engine = create_engine(url)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"cannot use the database URL {url!r}: {first_line(exc)}",
                         "give a file path or a URL such as sqlite:///digest.db or postgresql+psycopg://…") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _pragmas)
    return engine


def first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc)
    return message.splitlines()[0] if message else type(exc).__name__


def _config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 — Alembic only when a migration is due

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest revision, as Alembic reads it from the migrations."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    """The revision the database records (None: none yet), read without Alembic."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the database's schema to the newest revision (nothing to do, the common case, costs one
    query); a failure is a StoreError naming the database."""
    try:
        with engine.connect() as connection:
            if current(connection) == HEAD:
                return
        from alembic import command  # noqa: PLC0415 — Alembic only when a migration is due

        with _migration_lock(engine), engine.begin() as connection:
            if current(connection) is None and inspect(connection).has_table("subscribers"):
                _stamp(connection, BASELINE)  # made before migrations: it is the baseline
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except sa_exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot open the database {where(engine)}: {first_line(exc)}",
                         "check --database (or DIGEST_DATABASE) and that its folder exists") from None


def _stamp(connection: Connection, revision: str) -> None:
    from alembic import command  # noqa: PLC0415

    config = _config()
    config.attributes["connection"] = connection
    command.stamp(config, revision)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    path = sqlite_file(str(engine.url))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".migrate.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel however this process ends
            yield
        finally:
            os.close(fd)
        return
    if engine.dialect.name == "postgresql":
        with engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            try:
                yield
            finally:
                holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                holder.commit()
        return
    yield
