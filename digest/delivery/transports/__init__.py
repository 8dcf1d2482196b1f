"""Where messages go: the transports that keep the protocol of base.py, by name.

A transport is chosen by `[delivery] transport`, else "smtp" when digest.toml has an [smtp] table
and "outbox" when it has not; `digest send --outbox DIR` always takes the outbox.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from digest.core.config import Settings
from digest.core.errors import ConfigError
from digest.delivery.transports import outbox, smtp
from digest.delivery.transports.base import (
    Envelope,
    Kind,
    Outcome,
    Transport,
    WireMessage,
)

# name → open_transport(settings, box, folder): `box` names what is being sent (an edition), `folder`
# is an outbox folder given on the command line.
TRANSPORTS: dict[str, Callable[[Settings, str, Path | None], Transport]] = {
    "smtp": smtp.open_transport,
    "outbox": outbox.open_transport,
}

__all__ = ["TRANSPORTS", "Envelope", "Kind", "Outcome", "Transport", "WireMessage", "chosen", "open_transport"]


def chosen(settings: Settings, folder: Path | None = None) -> str:
    if folder is not None:
        return "outbox"
    return settings.delivery.transport or ("smtp" if settings.smtp is not None else "outbox")


def open_transport(settings: Settings, box: str, folder: Path | None = None) -> Transport:
    name = chosen(settings, folder)
    if name not in TRANSPORTS:
        raise ConfigError(f"delivery.transport {name!r} is unknown", f"use one of {', '.join(TRANSPORTS)}")
    return TRANSPORTS[name](settings, box, folder)
