"""uvicorn's HTTP/1.1 protocol with the deadlines and the connection cap a public port needs."""
from __future__ import annotations

import asyncio
import math
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from digest.web.serve.guard import (
    KEEP_ALIVE,
    MAX_CONNECTIONS,
    MAX_REQUEST_HEAD,
    REQUEST_TIMEOUT,
    log,
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11) with the deadlines uvicorn lacks, and a cap on connections.

    uvicorn (checked with 0.54) closes a connection left idle after an answer (timeout_keep_alive),
    but never one that sends nothing, half a request line or half its headers, nor one whose client
    stops reading its answer: on a public port such connections pile up until the process has no file
    descriptor left. Here:
      - a request's head must arrive whole within `request_timeout` of the connection opening or of
        the previous answer (a byte at a time does not extend it), and so must the rest of a body
        the application did not read; else the connection is closed. A body the application reads
        has the same deadline in _Guard, which answers 408;
      - a client that takes in nothing of its answer for `request_timeout` is dropped;
      - beyond `max_connections` open connections, a new one is closed as soon as it is accepted
        (and at `max_connections`, uvicorn's limit_concurrency answers 503).
    """

    request_timeout: float = REQUEST_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    refusal_logged_at: float = -math.inf  # per server class: the warning is said once a minute at most

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._stall: asyncio.TimerHandle | None = None

    # uvicorn narrows asyncio's BaseTransport to a Transport here, with the same ignore in its own code.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse()
            return
        self._watch(fresh=True)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch(fresh=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel("_deadline")
        self._cancel("_stall")
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = self.loop.call_later(self.request_timeout, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel("_stall")

    def _awaiting_client(self) -> bool:
        """Waiting on the client: for a request's head, or for the rest of a body already answered."""
        if self.transport.is_closing():
            return False
        state = self.conn.their_state
        answered = self.cycle is None or self.cycle.response_complete
        return state is h11.IDLE or (state is h11.SEND_BODY and answered)

    def _watch(self, fresh: bool = False) -> None:
        if fresh or not self._awaiting_client():
            self._cancel("_deadline")
        if self._deadline is None and self._awaiting_client():
            self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _cancel(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()  # nothing to log: browsers open connections they never use

    def _stalled(self) -> None:
        self._stall = None
        log.warning("a client stopped reading its answer for %g s: connection dropped", self.request_timeout)
        self.transport.abort()  # close() would wait for the buffer to drain, which it never will

    def _refuse(self) -> None:
        cls = type(self)
        now = self.loop.time()
        if now - cls.refusal_logged_at >= 60:
            cls.refusal_logged_at = now
            log.warning("connection limit (%d) reached: new connections are closed at once "
                        "(said once a minute at most)", self.max_connections)
        self.transport.close()


def uvicorn_options(request_timeout: float = REQUEST_TIMEOUT, max_connections: int = MAX_CONNECTIONS) -> dict:
    """The keyword arguments of uvicorn.run that set digest's limits (see GuardedH11Protocol)."""
    protocol = type("DigestH11Protocol", (GuardedH11Protocol,), {
        "request_timeout": request_timeout, "max_connections": max_connections, "refusal_logged_at": -math.inf,
    })
    return {
        "http": protocol,
        "ws": "none",  # no route speaks WebSocket: no upgrade either
        "limit_concurrency": max_connections,
        "timeout_keep_alive": KEEP_ALIVE,
        "h11_max_incomplete_event_size": MAX_REQUEST_HEAD,
    }
