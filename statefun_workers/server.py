"""The HTTP surface: Falcon ASGI resources around the core's ``RequestReplyHandler``.

The resources only move bytes: read the body (refusing it early when it is too large), hand it to
``RequestReplyHandler.dispatch_async``, and write the ``FromFunction`` back. Every error becomes an HTTP
status in one place, :func:`_handle_statefun_error`, from the ``status`` each ``StatefunError`` class carries.

Routes (see ``docs/contracts.md``): ``POST /statefun`` and ``POST /statefun/{function_name}`` (the body's
target decides, never the URL; a POST to any other unrouted path is served the same way, because the runtime
may be configured with any ``urlPathTemplate``), ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import Any, Protocol

import falcon
import falcon.asgi

from statefun_workers import RequestReplyHandler, StatefulFunctions, build_info, metrics
from statefun_workers.errors import (
    ClientGoneError,
    FunctionError,
    OverloadedError,
    RequestTooLargeError,
    StatefunError,
    WorkerStoppingError,
)
from statefun_workers.handler import BLOCKING, Batch, BatchResult, stopped, timed_out
from statefun_workers.limits import CANCEL_ON_DISCONNECT, CLIENT_GONE, BufferBudget, release_memory
from statefun_workers.logs import LOGGER_NAME, LogThrottle
from statefun_workers.settings import Settings

__all__ = ["OCTET_STREAM", "PROCESS_READINESS", "BatchRequest", "NullRecorder", "Readiness", "RequestRecorder",
           "create_admin_app", "create_app"]

OCTET_STREAM = "application/octet-stream"
"""The only Content-Type the runtime accepts on a 2xx: OkHttp compares the whole string, parameters too."""
_TEXT = "text/plain; charset=utf-8"

log = logging.getLogger(f"{LOGGER_NAME}.server")


class RequestRecorder(Protocol):
    """What the server reports about each batch request; ``statefun_workers.metrics`` implements it.

    ``request_started`` is called once per ``POST``, then one of the others, on the worker's event loop; none
    may block.
    """

    def request_started(self) -> None:
        """A batch request arrived (before its body is read)."""

    def request_finished(self, result: BatchResult | None, seconds: float, request_bytes: int = -1) -> None:
        """The request is answered after ``seconds``; ``result`` is None when the core never saw it (too
        large, unreadable, a bug); ``request_bytes`` is the body size, -1 when unknown."""

    def request_dropped(self) -> None:
        """The client went away before its body was whole: there was no batch, and no answer. When the HTTP
        layer cut the body at a bound, it counts that itself (``statefun_connections_refused_total``)."""


class NullRecorder:
    """The recorder that does nothing: metrics off."""

    __slots__ = ()

    def request_started(self) -> None:
        pass

    def request_finished(self, result: BatchResult | None, seconds: float, request_bytes: int = -1) -> None:
        pass

    def request_dropped(self) -> None:
        pass


class Readiness:
    """Whether this worker process wants new work; the worker flips it on SIGTERM (see ``worker.py``)."""

    __slots__ = ("draining",)

    def __init__(self) -> None:
        self.draining = False


PROCESS_READINESS = Readiness()
"""This process's readiness. Readiness belongs to the worker process, not to one app object: the worker that
receives SIGTERM turns every app it serves unready."""


class BatchRequest(falcon.asgi.Request):
    """Falcon's ASGI request, keeping the body when the server handed all of it over in the first event.

    uvicorn has usually read a whole batch request before the app runs, and then gives it in the first
    ``http.request`` event, which Falcon receives before it makes the request. Taking the body from there
    skips Falcon's body stream (made and read for every request otherwise), a measured 2% of a greeter
    request; a body in several events is read from the stream as before.
    """

    def __init__(self, scope: dict[str, Any], receive: Any, first_event: dict[str, Any] | None = None,
                 options: Any = None) -> None:
        whole_body = None
        if first_event is not None and not first_event.get("more_body", False):
            whole_body = first_event.get("body", b"")
        self._watch = None if whole_body is not None else _DisconnectWatch(receive)
        super().__init__(scope, receive if self._watch is None else self._watch, first_event=first_event,
                         options=options)
        self.whole_body: bytes | None = whole_body
        """The request's body when the first event held all of it, else None (read ``stream``)."""

    @property
    def client_gone(self) -> bool:
        """Whether the client went away while the body was read from the stream (Falcon's stream just ends)."""
        return self._watch is not None and self._watch.gone


class _DisconnectWatch:
    """An ASGI ``receive`` that notes an ``http.disconnect`` (a callable object, so the request holding it makes
    no reference cycle)."""

    __slots__ = ("_receive", "gone")

    def __init__(self, receive: Any) -> None:
        self._receive = receive
        self.gone = False

    async def __call__(self) -> dict[str, Any]:
        event: dict[str, Any] = await self._receive()
        if event["type"] == "http.disconnect":
            self.gone = True
        return event


_RELEASE_AFTER_BYTES = 1024 * 1024
"""A body this large, read in parts, is followed by ``release_memory`` once no other large body is held."""
_BATCH_TIMEOUT = "batch timeout"
"""The message of the cancellation at a batch's deadline, by which it is told from a shutdown's."""


class FunctionResource:
    """``POST`` a ``ToFunction`` batch, get its ``FromFunction``.

    Bounds (``statefun_workers.limits``): a body over ``max_request_bytes`` is refused before it is read
    (413); bodies read in parts reserve their length in a per-worker :class:`BufferBudget` (503 beyond it);
    a batch that must wait (an async or blocking function) gets ``batch_timeout`` seconds, and is stopped
    if its client goes away. A plain sync function's batch runs to its end in one call, with none of this
    bookkeeping: the common case pays nothing for it.
    """

    def __init__(self, handler: RequestReplyHandler, settings: Settings, recorder: RequestRecorder,
                 blocking_threads: int) -> None:
        self._start = handler.start
        self._finish = handler.finish_async
        self._limit = settings.max_request_bytes
        self._timeout = settings.batch_timeout
        self._budget = BufferBudget(settings.max_buffered_bytes)
        self._blocking_threads = blocking_threads
        self._recorder = recorder

    async def on_post(self, req: BatchRequest, resp: falcon.asgi.Response, function_name: str = "") -> None:
        recorder = self._recorder
        recorder.request_started()
        started = perf_counter()
        body = None
        result = None
        held = 0
        dropped = False
        try:
            whole = req.whole_body
            if whole is not None and len(whole) <= self._limit:
                body = whole
            else:
                try:
                    body, held = await self._read_body(req)
                except ClientGoneError:
                    dropped = True
                    raise
                except StatefunError as ex:  # refused before the core saw it: counted under its own reason
                    result = BatchResult(error=ex, outcome="error")
                    raise
            done = self._start(body)
            result = done if type(done) is BatchResult else await self._finish_in_time(req, done)  # type: ignore[arg-type]
        finally:
            if held:
                self._budget.release(held)
                if not self._budget.held and held >= _RELEASE_AFTER_BYTES:
                    # NOTE: once this request's own frame, and its body, are gone.
                    asyncio.get_running_loop().call_soon(release_memory)
            if dropped:
                recorder.request_dropped()
            else:
                recorder.request_finished(result, perf_counter() - started, -1 if body is None else len(body))
        if result.error is not None:
            raise result.error
        resp.data = result.response
        resp.content_type = OCTET_STREAM

    async def _finish_in_time(self, req: BatchRequest, batch: Batch) -> BatchResult:
        """Finish a batch that waits, within the batch timeout, unless its client goes away first."""
        if batch.function.blocking and BLOCKING.busy >= self._blocking_threads:
            return stopped(batch, OverloadedError(
                f"every one of the {self._blocking_threads} blocking threads is busy (STATEFUN_BLOCKING_THREADS)",
                typename=batch.function.typename, id=batch.context._id))
        task = asyncio.current_task()
        assert task is not None
        timer = asyncio.get_running_loop().call_later(self._timeout, task.cancel, _BATCH_TIMEOUT)
        scope = req.scope
        scope[CANCEL_ON_DISCONNECT] = task
        try:
            return await self._finish(batch)
        except asyncio.CancelledError as ex:
            # NOTE: every cancellation ends here, answered: the deadline's, the client's, and the one uvicorn
            #   sends when the graceful shutdown runs out (re-raised, it would be logged with a traceback per
            #   batch and answered 500). Nothing awaits this task but uvicorn, which only wants it to end.
            if hasattr(task, "uncancel"):  # Python 3.11+
                task.uncancel()
            why = ex.args[0] if ex.args else None
            function = batch.function
            if function.blocking:  # its thread runs on, whatever stopped the batch
                BLOCKING.abandon()
            if why == _BATCH_TIMEOUT:
                return timed_out(batch, self._timeout)
            if why == CLIENT_GONE:
                error: StatefunError = ClientGoneError(
                    "the client closed the connection before the answer; the batch was stopped",
                    typename=function.typename, id=batch.context._id)
            else:
                error = WorkerStoppingError(
                    "the worker stopped this batch at the end of its graceful shutdown (STATEFUN_GRACEFUL_TIMEOUT)",
                    typename=function.typename, id=batch.context._id)
            return stopped(batch, error)
        finally:
            timer.cancel()
            del scope[CANCEL_ON_DISCONNECT]

    async def _read_body(self, req: BatchRequest) -> tuple[bytes, int]:
        """The body from Falcon's stream (it came in several events) and the bytes it holds in the budget
        (the caller releases them when the batch is answered); or the 413 for a body over the limit, or the
        503 when this worker already holds too many request bytes."""
        limit = self._limit
        length = req.content_length if req.whole_body is None else len(req.whole_body)
        if length is not None:
            # NOTE: the runtime always sends Content-Length; refuse an oversized body before reading it.
            if length > limit:
                raise RequestTooLargeError(
                    f"request body of {length} bytes is over the limit of {limit} bytes")
            self._reserve(length)
            try:
                body = await req.stream.readall()
                if len(body) < length:  # NOTE: the HTTP parser ends a body early only when its connection does
                    raise ClientGoneError(f"the client went away after {len(body)} of {length} body bytes")
            except BaseException:
                self._budget.release(length)
                raise
            return body, length
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in req.stream:
                self._reserve(len(chunk))
                size += len(chunk)
                if size > limit:
                    raise RequestTooLargeError(f"chunked request body is over the limit of {limit} bytes")
                chunks.append(chunk)
            if req.client_gone:
                raise ClientGoneError(f"the client went away after {size} bytes of a chunked body")
        except BaseException:
            self._budget.release(size)
            raise
        return b"".join(chunks), size

    def _reserve(self, size: int) -> None:
        budget = self._budget
        if not budget.reserve(size):
            raise OverloadedError(
                f"this worker is reading {budget.held} bytes of other requests; {size} more would pass its "
                f"limit of {budget.limit} (STATEFUN_MAX_BUFFERED_BYTES)")

    async def sink(self, req: BatchRequest, resp: falcon.asgi.Response | None, **params: Any) -> None:
        """Serve a POST to an unrouted path as a batch; anything else there is a 404."""
        if req.method != "POST" or resp is None:  # resp is None only for a WebSocket
            raise falcon.HTTPNotFound()
        await self.on_post(req, resp)


class HealthResource:
    """``GET /healthz``: 200 while the process can run its event loop."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = _TEXT
        resp.text = "ok"

    # Some load balancers probe with HEAD; Falcon sends the headers and no body.
    on_head = on_get


class ReadyResource:
    """``GET /readyz``: 200, or 503 once the worker is draining so that load balancers stop sending work."""

    def __init__(self, readiness: Readiness) -> None:
        self._readiness = readiness

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = _TEXT
        if self._readiness.draining:
            resp.status = 503
            resp.text = "draining"
        else:
            resp.text = "ready"

    on_head = on_get


class MetricsResource:
    """``GET /metrics``: what ``statefun_workers.metrics.render()`` returns."""

    def __init__(self, render: Callable[[], tuple[bytes, str]]) -> None:
        self._render = render

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        # NOTE: a multiprocess scrape reads one file per worker and type; keep that off the event loop.
        body, content_type = await asyncio.to_thread(self._render)
        resp.data = body
        resp.content_type = content_type


def _describe(ex: StatefunError, expose: bool = False) -> str:
    """The short answer body: what went wrong, naming the function where known, never a traceback, and never
    the function's exception text unless ``expose`` (it may hold paths, keys or user data)."""
    text = ex.message
    if ex.typename and ex.typename not in text:
        text += f" (function {ex.typename}" + (f", id {ex.id!r})" if ex.id is not None else ")")
    if expose and isinstance(ex, FunctionError) and ex.detail:
        text += f": {ex.detail}"
    return f"{ex.status} {ex.reason}: {text}\n"


class ErrorHandler:
    """Answers and logs every ``StatefunError`` that ends a request, in one place.

    Each failure is logged on one line. Its traceback comes with the first one of its kind and again once 10 s
    have passed, with the number of tracebacks left out meanwhile: the runtime re-sends a failing batch within
    milliseconds for up to its call budget, and a client may send failing batches for as many addresses as
    it likes. A kind is the reason, the bound typename and the exception's class, never the address id nor
    anything else a client chooses (a refused request's typename may be any string). The lines are bounded
    too: at most one per kind per second, the next one saying how many were left out (``lines_not_logged``);
    the metrics count every failure.
    """

    def __init__(self, expose_errors: bool = False) -> None:
        self.expose_errors = expose_errors
        self.tracebacks = LogThrottle()
        self.lines = LogThrottle(interval=1.0)

    async def __call__(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: StatefunError,
                       params: dict[str, Any]) -> None:
        status = ex.status
        cause = ex.__cause__
        bound = isinstance(ex, FunctionError)  # the typename of a refused request is the client's choice
        kind = (ex.reason, ex.typename if bound else None, type(cause).__name__ if cause is not None else None)
        logged, lines_skipped = self.lines.check(kind)
        with_traceback, suppressed = self.tracebacks.check(kind)
        if logged or with_traceback:
            fields: dict[str, Any] = {"status": status, "reason": ex.reason, "typename": ex.typename,
                                      "address_id": ex.id}
            if suppressed:
                fields["tracebacks_suppressed"] = suppressed
            if lines_skipped:
                fields["lines_not_logged"] = lines_skipped
            if status >= 500 and status != 503:
                log.error("batch failed: %s", ex, exc_info=ex if with_traceback else None, extra=fields)
            elif status != ClientGoneError.status:
                log.warning("batch refused: %s", ex,
                            exc_info=ex if with_traceback and cause is not None else None, extra=fields)
        resp.status = status
        resp.content_type = _TEXT
        resp.text = _describe(ex, self.expose_errors)
        if status == 413:
            # NOTE: the rest of an oversized body may still be on the wire; closing beats reading it.
            resp.set_header("Connection", "close")


_INTERNAL_ERRORS = LogThrottle()


async def _handle_unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception,
                             params: dict[str, Any]) -> None:
    logged, suppressed = _INTERNAL_ERRORS.check(type(ex).__name__)
    if logged:
        log.error("internal error on %s %s", req.method, req.path, exc_info=ex,
                  extra={"status": 500, "errors_not_logged": suppressed})
    resp.status = 500
    resp.content_type = _TEXT
    resp.text = "500 internal_error: the server failed; see its logs\n"


def _serialize_http_error(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError) -> None:
    """Falcon's own errors (404, 405, bad headers) as short text, like ours, instead of JSON."""
    log.info("%s on %s %s", ex.status, req.method, req.path, extra={"status": ex.status_code})
    resp.content_type = _TEXT
    resp.text = f"{ex.title}" + (f": {ex.description}" if ex.description else "") + "\n"


def create_app(functions: StatefulFunctions, *, settings: Settings | None = None,
               recorder: RequestRecorder | None = None,
               readiness: Readiness | None = None) -> falcon.asgi.App[BatchRequest, falcon.asgi.Response]:
    """Build the ASGI app serving ``functions``.

    Args:
        functions: the registry to serve (freeze it before gunicorn forks).
        settings: limits; the defaults of :class:`Settings` when None.
        recorder: per-request hooks; when None, this process's recorder
            (``statefun_workers.metrics.make_recorder``). Pass :class:`NullRecorder` for no metrics.
        readiness: what ``/readyz`` reports; this process's :data:`PROCESS_READINESS` when None.
    """
    settings = settings or Settings()
    build_info.serve_typenames(functions.functions)
    if recorder is None:
        recorder = metrics.make_recorder(sorted(functions.functions), settings)
    app = falcon.asgi.App(request_type=BatchRequest)
    # NOTE: threads start on first use, in a worker; none exist in the master when gunicorn forks.
    blocking_threads = settings.blocking_threads or min(32, (os.cpu_count() or 1) + 4)  # asyncio's default
    executor = ThreadPoolExecutor(blocking_threads, thread_name_prefix="statefun-blocking")
    handler = RequestReplyHandler(functions, executor=executor)
    function_resource = FunctionResource(handler, settings, recorder, blocking_threads)
    app.add_route("/statefun", function_resource)
    app.add_route("/statefun/{function_name}", function_resource)
    _add_admin_routes(app, readiness)
    app.add_sink(function_resource.sink, "/")
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(StatefunError, ErrorHandler(settings.expose_errors))
    app.set_error_serializer(_serialize_http_error)
    return app


def create_admin_app(
        readiness: Readiness | None = None) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """The app of the plain admin port (``STATEFUN_ADMIN_PORT``): the probes and ``/metrics``, nothing else.

    No function route: a batch must never be served on a port without TLS and client certificates, so every
    other path is 404 here (``statefun_workers.tls``).
    """
    app = falcon.asgi.App()
    _add_admin_routes(app, readiness)
    app.add_error_handler(Exception, _handle_unexpected)
    app.set_error_serializer(_serialize_http_error)
    return app


def _add_admin_routes(app: falcon.asgi.App[Any, Any], readiness: Readiness | None) -> None:
    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", ReadyResource(readiness or PROCESS_READINESS))
    app.add_route("/metrics", MetricsResource(metrics.render))
