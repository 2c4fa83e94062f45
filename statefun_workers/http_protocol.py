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

The protocol also enforces the HTTP bounds of its :class:`~statefun_workers.settings.Settings` (see
``statefun_workers.limits``), where they are cheapest:
the head's size as its bytes arrive (431), the header count, the HTTP version, the transfer coding and a
100-continue body's declared length when the head is complete (431, 505, 501, 413), the connection count when
a connection is made (503), and the time limits (a head; a body's bytes, one after the other and as a whole)
from a sweep the worker runs twice a second (:func:`enforce_deadlines`), so the request path arms no timers.
Each refusal is an HTTP answer with ``Connection: close``, counted by reason (``limits.REFUSALS``), and logged
at most once per reason per 10 s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from statefun_workers.limits import CANCEL_ON_DISCONNECT, CLIENT_GONE, count_refusal
from statefun_workers.logs import LOGGER_NAME, LogThrottle
from statefun_workers.settings import Settings

__all__ = ["HttpProtocol", "JoinedWritesTransport", "ResponseCycle", "enforce_deadlines", "limited"]

log = logging.getLogger(f"{LOGGER_NAME}.http")
_LOG_THROTTLE = LogThrottle()
"""One refusal line per reason per 10 s: a client that is refused can send again at once, and again."""

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


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that ``_refusal`` says how to answer."""


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`JoinedWritesTransport`, with :class:`ResponseCycle`, a
    keep-alive timer armed once per idle period, and the bounds of :attr:`limits` (see the module docstring)."""

    limits: ClassVar[Settings] = Settings()
    """The settings whose HTTP bounds this class enforces; the worker serves a subclass made by
    :func:`limited`, with its own settings (``max_connections`` capped by the descriptor limit)."""

    _idle_since: float | None = None
    _idle_timer: asyncio.TimerHandle | None = None
    _head_since: float | None = None
    """When the head being received began (its first byte, or the connection); None between heads."""
    _head_bytes = 0
    """Bytes received since the head being received began."""
    _last_read = 0.0
    """When bytes last arrived."""
    _body_since = 0.0
    """When the head of the request whose body is arriving was complete."""
    _refusal: tuple[int | None, str, str] | None = None
    """(status, reason, text) of the refusal a parser callback raised ``_Refused`` for."""
    _write_paused_since: float | None = None
    """When the transport's buffer filled (the client stopped reading); None while it drains."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(JoinedWritesTransport(transport, self.loop))  # type: ignore[arg-type]
        self._head_since = self._last_read = self.loop.time()
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "too_many_connections",
                         f"this worker has {self.limits.max_connections} connections open, its limit "
                         f"(STATEFUN_MAX_CONNECTIONS); retry")

    def data_received(self, data: bytes) -> None:
        # NOTE: uvicorn's own, restated to answer a refusal raised in a parser callback with its own status
        #   (uvicorn's answers every parser error 400) and to bound the head's size as it arrives.
        self._unset_keepalive_if_required()
        self._last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as ex:
            refusal, self._refusal = self._refusal, None
            if refusal is None:
                self._count_and_log(400, "invalid_request", f"invalid HTTP request ({ex})")
                self.send_400_response("Invalid HTTP request received.")  # uvicorn's answer, byte for byte
            else:
                self._refuse(*refusal)
            return
        if self._head_since is not None:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "header_too_large",
                             f"the request head is over {self.limits.max_header_bytes} bytes "
                             f"(STATEFUN_MAX_HEADER_BYTES)")
        elif self.headers is not None and len(self.headers) > self.limits.max_headers:
            # The trailers of a chunked body are added to the head's headers, after the head's checks.
            self._refuse(431, "too_many_headers", f"the request has more than {self.limits.max_headers} header "
                         f"lines, trailers included (STATEFUN_MAX_HEADERS)")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_since = self._last_read
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_since = None
        self._body_since = self._last_read
        self._check_head()
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
        cycle = self.cycle
        super().connection_lost(exc)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if cycle is not None and not cycle.response_complete:
            # The client went away with its batch unanswered: stop the batch (server.FunctionResource
            # registered its task in the scope when it had to wait for one).
            task: asyncio.Task[Any] | None = cycle.scope.get(CANCEL_ON_DISCONNECT)  # type: ignore[assignment]
            if task is not None:
                task.cancel(CLIENT_GONE)

    # --- the bounds ------------------------------------------------------------------------------------

    def _check_head(self) -> None:
        """Refuse a complete head that is over a bound, or that asks for what this server does not do."""
        limits = self.limits
        headers = self.headers
        if len(self.pipeline) >= MAX_PIPELINED:
            # NOTE: no answer: it would overtake the answers to the requests queued before this one.
            self._refusing(None, "pipeline_too_deep",
                           f"more than {MAX_PIPELINED} requests sent ahead of their answers")
        if len(headers) > limits.max_headers:
            self._refusing(431, "too_many_headers",
                           f"the request has {len(headers)} header lines, over {limits.max_headers} "
                           f"(STATEFUN_MAX_HEADERS)")
        version = self.parser.get_http_version()
        if version != "1.1" and version != "1.0":
            self._refusing(505, "http_version", f"HTTP/{version} is not supported; use HTTP/1.1")
        for name, value in headers:
            if name == b"transfer-encoding" and value.strip().lower() != b"chunked":
                self._refusing(501, "transfer_coding",
                               f"transfer coding {value.decode('latin-1')!r} is not supported; only chunked")
        if self.expect_100_continue:
            # NOTE: uvicorn would answer 100 Continue as soon as the app reads, inviting the whole body first.
            for name, value in headers:
                if name == b"content-length" and value.isdigit() and int(value) > limits.max_request_bytes:
                    self._refusing(413, "body_too_large",
                                   f"request body of {int(value)} bytes is over the limit of "
                                   f"{limits.max_request_bytes} bytes (STATEFUN_MAX_REQUEST_BYTES)")

    def _refusing(self, status: int | None, reason: str, text: str) -> None:
        """Stop parsing from within a parser callback; ``data_received`` answers ``status``."""
        self._refusal = (status, reason, text)
        raise _Refused(reason)

    def _refuse(self, status: int | None, reason: str, text: str) -> None:
        """Answer ``status`` with ``text`` (unless it is None, or an answer is under way), close, count and
        log (throttled)."""
        self._count_and_log(status, reason, text)
        transport = self.transport
        if transport.is_closing():
            return
        cycle = self.cycle
        if status is not None and (cycle is None or cycle.response_complete or not cycle.response_started):
            body = (text + "\n").encode("utf-8", "replace")
            transport.write(b"".join([
                STATUS_LINE[status],
                *(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers),
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: ", str(len(body)).encode("ascii"), b"\r\n",
                b"connection: close\r\n\r\n", body]))
        transport.close()

    def _count_and_log(self, status: int | None, reason: str, text: str) -> None:
        """Count a refusal, and log it unless one with the same reason was logged in the last 10 s; ``status``
        is what was answered, None when the connection was closed without an answer."""
        count_refusal(reason)
        logged, suppressed = _LOG_THROTTLE.check(reason)
        if logged:
            log.warning("connection refused: %s", text, extra={
                "status": status, "reason": reason, "client": _client_host(self.client),
                "refusals_not_logged": suppressed})

    def pause_writing(self) -> None:
        super().pause_writing()
        self._write_paused_since = self.loop.time()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._write_paused_since = None

    def check_deadlines(self, now: float) -> None:
        """Close the connection if its head is late, or a body, the request's or the answer's, has stalled
        (see :func:`enforce_deadlines`)."""
        limits = self.limits
        paused = self._write_paused_since
        if paused is not None and now - paused > limits.body_stall_timeout:
            # NOTE: abort, not close: close would wait for the client to read what is buffered, for ever.
            self._count_and_log(None, "response_stall", f"the client stopped reading its answer for "
                                f"{limits.body_stall_timeout:g} s (STATEFUN_BODY_STALL_TIMEOUT)")
            self.transport.abort()
            return
        if self.transport.is_closing():
            return
        if self._head_since is not None:
            if now - self._head_since > limits.header_timeout:
                if self._head_bytes:
                    self._refuse(408, "header_timeout",
                                 f"the request head did not arrive within {limits.header_timeout:g} s "
                                 f"(STATEFUN_HEADER_TIMEOUT)")
                else:  # NOTE: nothing was asked; an answer could be taken for the one to a request in flight
                    self._count_and_log(None, "header_timeout", "a connection sent nothing within "
                                        f"{limits.header_timeout:g} s (STATEFUN_HEADER_TIMEOUT)")
                    self.transport.close()
            return
        cycle = self.cycle
        # NOTE: not while reading is paused: then the worker, not the client, is behind.
        if cycle is None or not cycle.more_body or cycle.response_complete or self.flow.read_paused:
            return
        if now - self._last_read > limits.body_stall_timeout:
            self._refuse(408, "body_stall",
                         f"no request body byte for {limits.body_stall_timeout:g} s (STATEFUN_BODY_STALL_TIMEOUT)")
        elif now - self._body_since > limits.body_timeout:
            self._refuse(408, "body_timeout",
                         f"the request body did not arrive within {limits.body_timeout:g} s (STATEFUN_BODY_TIMEOUT)")


MAX_PIPELINED = 64
"""Requests a connection may send ahead of their answers. uvicorn queues each one parsed (its scope, headers
and cycle, a few KiB) and pauses reading only after the whole packet is parsed: without a bound, 256 KiB of
minimal requests would queue ~14,000 of them per connection. The runtime's HTTP clients never pipeline."""


def _client_host(client: tuple[str, int] | None) -> str | None:
    return None if client is None else client[0]


def enforce_deadlines(connections: Iterable[Any], now: float) -> None:
    """Apply the head and body time limits to every connection of a server (the worker calls this twice a
    second): one sweep instead of a timer per request, which would cost every request two timer operations."""
    for connection in list(connections):
        if isinstance(connection, HttpProtocol):
            connection.check_deadlines(now)


def limited(limits: Settings) -> type[HttpProtocol]:
    """An :class:`HttpProtocol` subclass enforcing the HTTP bounds of ``limits`` (uvicorn makes protocols from
    a class)."""
    return type("LimitedHttpProtocol", (HttpProtocol,), {"limits": limits})
