"""Connection bounds for uvicorn's h11 protocol: a deadline for a request's headers, and a connection cap.

uvicorn bounds how long an idle keep-alive connection stays open and how large a request's headers may
be, but not how long they may take to arrive: a client that sends half a request line, then a byte a
minute, holds its connection for ever. `guarded_h11` makes an H11Protocol that closes a connection whose
request headers are not complete within `header_timeout_s` of its opening (or, on a keep-alive
connection, of the previous response), and answers every request on a connection beyond
`max_connections` with the service's JSON 503 (Retry-After, Connection: close), where uvicorn's own
`limit_concurrency` would answer in plain text. The body has its own deadline (`app.http.middleware`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.http.error_mapping import error_response

logger = logging.getLogger(__name__)

# Refusals are counted by the caller's `on_refusal`; the log says so at most this often.
LOG_EVERY_S = 10.0


def guarded_h11(*, header_timeout_s: float, max_connections: int,
                on_refusal: Callable[[str], None]) -> type[H11Protocol]:
    """An H11Protocol class with the header deadline and the connection cap; `on_refusal(reason)` is
    called with "header_timeout" or "too_many_connections" for every connection closed or refused."""
    too_many = error_response(
        503, "too_many_connections",
        f"the server has {max_connections} connections open, its limit; retry shortly",
        {"Retry-After": "1", "Connection": "close"},
    )
    last_log = {"header_timeout": 0.0, "too_many_connections": 0.0}

    def refused(reason: str, message: str) -> None:
        on_refusal(reason)
        now = time.monotonic()
        if now - last_log[reason] >= LOG_EVERY_S:
            last_log[reason] = now
            logger.warning("%s (counted in srgan_rejected_total{reason=%r})", message, reason)

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self.app = too_many  # every request on this connection gets the 503
                refused("too_many_connections",
                        f"refused a connection: {len(self.connections)} open, the limit is {max_connections}")
            self._arm_header_deadline()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)

        def _arm_header_deadline(self) -> None:
            self._disarm_header_deadline()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm_header_deadline(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                refused("header_timeout", "closed a connection that sent no complete request headers "
                        f"in {header_timeout_s:g} s")
                self.transport.close()

    return GuardedH11Protocol
