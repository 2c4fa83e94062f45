"""The HTTP/1.1 protocol the workers speak: uvicorn's httptools protocol, with a shorter path for the answers
this server sends.

Why: once the handler was fast, uvicorn's own per-request work was the largest cost of a small batch request.
Three parts of it do nothing useful for this server:

* **Two writes per response.** uvicorn writes the status line and headers when the app sends
  ``http.response.start``, and the body when it sends ``http.response.body``: two system calls and two TCP
  segments per answer. Here the connection's writes of one event-loop turn leave together, at the end of
  the turn (:class:`JoinedWritesTransport`). Writing each answer at once instead, as soon as it is whole,
  measured no faster: it cost more kernel time per request than it saved, since the answers to
  concurrent requests then go out, and wake the client, one by one instead of together.
* **Header checks on every response.** uvicorn checks each header name and value against a regular expression
  on every response. The ones this server sends recur (``content-type: application/octet-stream``), so a name
  or value that passed once is remembered (a bounded set per process) and not checked again; the default
  headers (``date``) are encoded once per second instead of once per response. The body of such an answer,
  when it comes whole in one message (every answer here), is sent without another pass through uvicorn's
  checks.
* **Two timer operations per request.** uvicorn cancels the connection's keep-alive timer when data arrives
  and arms a new one when the response is complete. Here the timer is armed when a connection goes idle
  without one, and when it fires it closes the connection only if it has been idle for the whole timeout,
  else it waits out the rest. The connection closes at the same moment as with uvicorn.

Everything else is uvicorn's own code, reached by delegating to it: bodies in several parts, HEAD, 204 and 304,
answers without a ``Content-Length`` (chunked), ``Connection: close``, 100-continue, pipelining, flow
control, disconnects, upgrades, errors, access logs and graceful shutdown. ``tests/server/test_http_protocol.py``
sends generated requests and answers through both this protocol and uvicorn's and compares the bytes;
pyproject.toml bounds the uvicorn versions, because this module uses uvicorn's fields the way uvicorn's own
code does. The measurements are in ``docs/server.md``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

__all__ = ["HttpProtocol", "JoinedWritesTransport", "ResponseCycle"]

_CHECKED_MAX = 1024
"""How many header names, and values, a process remembers as checked (content lengths vary)."""
_checked_names: set[bytes] = set()
_checked_values: set[bytes] = set()

# Headers that change how uvicorn frames or ends a response: an answer carrying one takes uvicorn's path.
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))


def _acceptable(name: bytes, value: bytes) -> bool:
    """Whether uvicorn's checks accept this header."""
    return not HEADER_RE.search(name) and not HEADER_VALUE_RE.search(value)


def _valid(name: bytes, value: bytes) -> bool:
    """Whether uvicorn would accept this header; remembered, since the same few recur."""
    if not _acceptable(name, value):
        return False
    if len(_checked_names) < _CHECKED_MAX:
        _checked_names.add(name)
    if len(_checked_values) < _CHECKED_MAX:
        _checked_values.add(value)
    return True


class _EncodedDefaults:
    """The server's default headers (``date``, ``server``) as bytes, encoded once per list.

    uvicorn replaces the list once a second (the date); encoding it once per list instead of once per
    response saves a loop over it and its checks. None stands for "let uvicorn do it" (a default header that
    fails the check or frames the response). The list and its encoding are kept as one tuple, replaced whole,
    so that servers on event loops in other threads never read one list's encoding for another.
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[list[tuple[bytes, bytes]] | None, bytes | None] = (None, None)

    def of(self, headers: list[tuple[bytes, bytes]]) -> bytes | None:
        last = self.last
        if last[0] is headers:
            return last[1]
        encoded: bytes | None = b"".join(name.lower() + b": " + value + b"\r\n" for name, value in headers)
        for name, value in headers:
            # NOTE: not _valid: a new date every second would fill the remembered values with stale ones.
            if name.lower() in _FRAMING or not _acceptable(name, value):
                encoded = None
        self.last = (headers, encoded)
        return encoded


_DEFAULTS = _EncodedDefaults()


class ResponseCycle(RequestResponseCycle):
    """uvicorn's request-response cycle, with the head of a response with a ``Content-Length`` encoded
    without uvicorn's per-header checks (see ``_valid``) and with the default headers encoded once, and the
    body of such a response sent directly when it comes whole.

    This fast path sets uvicorn's response fields exactly as uvicorn's ``send`` would, so any message it does
    not take (a HEAD, a chunked answer, a header uvicorn refuses, a body in parts) goes to uvicorn's ``send``.
    """

    _own_head = False
    """Whether ``_encode_head`` wrote this answer's head (then ``_sent_last_body`` may send its body)."""

    async def send(self, message: Any) -> None:
        if self.disconnected or self.flow.write_paused or self.access_log:
            await super().send(message)
        elif not self.response_started:
            head = self._encode_head(message) if message["type"] == "http.response.start" else None
            if head is None:
                await super().send(message)
                return
            self.response_started = True
            self.waiting_for_100_continue = False
            self._own_head = True
            self.transport.write(head)
        elif not (self._own_head and self._sent_last_body(message)):
            await super().send(message)

    def _sent_last_body(self, message: Any) -> bool:
        """Send the body of an ``_encode_head`` answer when it comes whole, in one message, as uvicorn would."""
        if self.response_complete or message["type"] != "http.response.body" or message.get("more_body", False):
            return False
        body = message.get("body", b"")
        if len(body) != self.expected_content_length:
            return False  # uvicorn raises: longer, or shorter, than the Content-Length
        self.transport.write(body)
        self.expected_content_length = 0
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()
        return True

    def _encode_head(self, message: Any) -> bytes | None:
        """The status line and headers, with the body's framing set; None for uvicorn's path."""
        if self.scope["method"] == "HEAD":
            return None
        status_line = STATUS_LINE.get(message["status"])
        last = _DEFAULTS.last  # PERF: of()'s first test, inline: this runs once per response
        defaults = last[1] if last[0] is self.default_headers else _DEFAULTS.of(self.default_headers)
        if status_line is None or defaults is None or message["status"] in (204, 304):
            return None
        parts = [status_line, defaults]
        length = None
        for name, value in message.get("headers", ()):
            if (name not in _checked_names or value not in _checked_values) and not _valid(name, value):
                return None
            name = name.lower()
            if name in _FRAMING:
                if name != b"content-length" or length is not None or not value.isdigit():
                    return None
                length = int(value)
            parts += (name, b": ", value, b"\r\n")
        if length is None:
            return None
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        self.chunked_encoding = False
        self.expected_content_length = length
        return b"".join(parts)


class JoinedWritesTransport:
    """Wraps a connection's transport: the writes of one event-loop turn leave in one ``write`` of it.

    Only ``write`` and ``writelines`` are deferred, to the end of the current loop turn (``call_soon``);
    ``close`` sends what is pending first; everything else goes straight to the real transport. Flow control
    is unchanged: the real transport still pauses the protocol when its buffer fills, one loop turn later at
    most.
    """

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.BaseTransport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport: Any = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._send_pending)
        # NOTE: a transport owns what it was given once write() returns; a caller may reuse a bytearray.
        self._pending.append(data if type(data) is bytes else bytes(data))

    def writelines(self, list_of_data: Iterable[bytes]) -> None:
        for data in list_of_data:
            self.write(data)

    def _send_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        # NOTE: a transport closed by the peer in the meantime drops the bytes, as it would have anyway.
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._send_pending()
        self._transport.close()

    def is_closing(self) -> bool:
        # PERF: uvicorn asks after every response; __getattr__ would first fail a normal lookup.
        return bool(self._transport.is_closing())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`JoinedWritesTransport`, with :class:`ResponseCycle` and a
    keep-alive timer armed once per idle period (see the module docstring)."""

    _idle_since: float | None = None
    _idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(JoinedWritesTransport(transport, self.loop))  # type: ignore[arg-type]

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        # NOTE: uvicorn has just made this cycle and scheduled its task, which has not run yet; the cycle
        #   becomes a ResponseCycle before it sends anything. Changing the class instead of restating
        #   uvicorn's method keeps uvicorn's own request handling (paths, limits, pipelining), fixes included.
        if type(cycle) is RequestResponseCycle:
            cycle.__class__ = ResponseCycle

    def on_response_complete(self) -> None:
        if self.pipeline or self.transport.is_closing():
            super().on_response_complete()  # starts the next pipelined request; arms no timer
            return
        self.server_state.total_requests += 1
        self.flow.resume_reading()
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.timeout_keep_alive, self._close_if_idle)

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this when data arrives (and on connection loss): the connection is busy.
        self._idle_since = None
        if self.timeout_keep_alive_task is not None:  # never armed here; uvicorn's own, should it arm one
            super()._unset_keepalive_if_required()

    def _close_if_idle(self) -> None:
        self._idle_timer = None
        if self._idle_since is None or self.transport.is_closing():
            return  # busy: the timer is armed again when its response is complete
        left = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self._idle_timer = self.loop.call_later(left, self._close_if_idle)
        else:
            self.timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
