"""Connection-level limits for the feedback API: header and body deadlines and a connection cap.

uvicorn bounds the idle time between requests (`timeout_keep_alive`) and the size of a request head, but
not the time a client may take to send one: a client trickling its headers, or its body, a byte at a time
held a connection (and, for the body, a request task) for as long as it liked, and nothing capped how many
it could open. The feedback API is reachable by many clients, so this protocol (uvicorn's h11 protocol
with three additions) enforces:

- a header deadline: the request line and headers must arrive within `header_timeout` of the connection
  opening (or of the previous response, on a kept-alive connection);
- a body deadline: the whole body must arrive within `body_timeout` of the headers;
- a cap on open connections: a connection beyond `max_connections` is answered 503 and closed at once,
  before anything is read from it.

A client that misses a deadline gets `408 Request Timeout` (when no response was started) and the
connection is closed. The limits hold whether or not the request is authenticated, since they act
before and beside the application.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_BUSY_RESPONSE = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\nretry-after: 1\r\n\r\n"


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header/body deadlines and a connection cap (see the module docstring).

    Subclass it with the limits set (`guarded_protocol`); uvicorn builds one instance per connection.
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._timed_cycle: object | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # H11Protocol's own signature
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(_BUSY_RESPONSE)
            transport.close()
            return
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        cycle = self.cycle
        if cycle is not None and cycle is not self._timed_cycle:  # a new request's headers are complete
            self._timed_cycle = cycle
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            if self._body_timer is not None:
                self._body_timer.cancel()
            self._body_timer = (self.loop.call_later(self.body_timeout, self._body_deadline)
                                if self.conn.their_state is h11.SEND_BODY else None)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle is self._timed_cycle:
            # kept alive: the next request's head has the same deadline, counted from now
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline)

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:  # still waiting for a request's head
            self._close_late()

    def _body_deadline(self) -> None:
        self._body_timer = None
        if self.conn.their_state is h11.SEND_BODY and self.cycle is self._timed_cycle:
            self._close_late()

    def _close_late(self) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_TIMEOUT_RESPONSE)
        self._cancel_timers()
        self.transport.close()


def guarded_protocol(*, header_timeout: float, body_timeout: float, max_connections: int) -> type[GuardedH11Protocol]:
    """A `GuardedH11Protocol` class with these limits, to pass as uvicorn's `http=`."""
    return type("FeedbackH11Protocol", (GuardedH11Protocol,), {
        "header_timeout": header_timeout, "body_timeout": body_timeout, "max_connections": max_connections,
    })
