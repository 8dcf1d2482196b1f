"""One `digest send` per edition and database at a time, on this machine."""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

from digest.core.errors import AlreadySending


class EditionLock:
    """Only one `digest send` per edition and database at a time: an flock, which the kernel releases
    when the process ends, however it ends (SIGKILL included), so a crash never leaves a stale lock."""

    def __init__(self, database: str, edition: str) -> None:
        if "://" not in database or database.startswith("sqlite:///"):
            base = Path(database.removeprefix("sqlite:///"))
            self.path = base.with_name(f"{base.name}.{edition}.lock")
        else:
            key = hashlib.sha256(f"{database}\x1f{edition}".encode()).hexdigest()[:16]
            self.path = Path(tempfile.gettempdir()) / f"digest-{key}.lock"
        self._fd: int | None = None

    def __enter__(self) -> EditionLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise AlreadySending(
                f"another 'digest send' (pid {holder}) is sending this edition right now",
                "wait for it to finish; running again afterwards continues where it stopped",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
