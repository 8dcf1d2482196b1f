"""Ports and patience for tests that run servers: on a shared machine another process may take a port
between the moment a test picks it and the moment a server binds it."""
from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Seconds a test waits for something that does happen (a server starting, a held reply let go, a
# process ending): a safety net for a machine whose cores are all busy, never a pace a test relies on.
PATIENCE = 120.0


def free_port() -> int:
    """A port nobody listens on right now. Another process may take it before our server binds it: bind
    port 0 in the server itself where it can, or check that what answers is ours and try again."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port where connections are refused for as long as the block runs: bound by us, so that no
    other process can listen there meanwhile, and never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], what: str, timeout: float = PATIENCE, every: float = 0.02) -> None:
    """Ask `predicate` every `every` seconds until it is true; fail naming `what` if it is not within
    `timeout` seconds (a safety net: on a loaded machine the condition comes late, never not at all)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
