"""Delivery to a folder, one .eml per message: the default before an SMTP server is configured.

Each file appears whole or not at all (written aside, then renamed), named after its envelope, in a
folder per edition (`box`), so that the folder holds exactly one message per reader.
"""
from __future__ import annotations

import os
from pathlib import Path

from digest.core.config import Settings
from digest.delivery.transports.base import Envelope, Kind, Outcome


class Outbox:
    wire = False  # stored as the message itself, as a mail app opens it
    concurrency = 1
    rate = 0.0

    def __init__(self, folder: Path, box: str) -> None:
        self.folder = folder / box
        self.where = f"outbox {self.folder}"

    def path_for(self, name: str) -> Path:
        return self.folder / f"{name}.eml"

    async def send(self, envelope: Envelope, message: bytes) -> Outcome:
        target = self.path_for(envelope.name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".tmp")
            with open(partial, "wb") as handle:
                handle.write(message)
            os.replace(partial, target)
        except OSError as exc:
            reason = " ".join(f"cannot write to {self.folder}: {exc.strerror or exc}".split())[:300]
            return Outcome(Kind.DEFERRED, None, reason)
        return Outcome(Kind.SENT, None, str(target))

    async def close(self) -> None:
        return None


def open_transport(settings: Settings, box: str, folder: Path | None = None) -> Outbox:
    """The outbox folder: `folder` (--outbox) or [delivery] outbox."""
    return Outbox(folder or settings.delivery.outbox, box)
