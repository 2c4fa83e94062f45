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
import importlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any, Protocol

import falcon
import falcon.asgi

from statefun_workers import RequestReplyHandler, StatefulFunctions, build_info
from statefun_workers.errors import MalformedRequestError, RequestTooLargeError, StatefunError
from statefun_workers.logs import LOGGER_NAME
from statefun_workers.settings import Settings

if TYPE_CHECKING:
    from statefun_workers.handler import BatchResult

__all__ = ["OCTET_STREAM", "PROCESS_READINESS", "BatchRequest", "NullRecorder", "Readiness", "Recorder",
           "create_app"]

OCTET_STREAM = "application/octet-stream"
"""The only Content-Type the runtime accepts on a 2xx: OkHttp compares the whole string, parameters too."""
_TEXT = "text/plain; charset=utf-8"

log = logging.getLogger(f"{LOGGER_NAME}.server")


class Recorder(Protocol):
    """What the server reports about each batch request; ``statefun_workers.metrics`` implements it.

    Both methods are called exactly once per ``POST``, on the worker's event loop, and must not block.
    """

    def request_started(self) -> None:
        """A batch request arrived (before its body is read)."""

    def request_finished(self, result: BatchResult | None, seconds: float, request_bytes: int = -1) -> None:
        """The request is answered after ``seconds``; ``result`` is None when the core never saw it (too
        large, unreadable, a bug); ``request_bytes`` is the body size, -1 when unknown."""


class NullRecorder:
    """The recorder that does nothing: metrics off."""

    __slots__ = ()

    def request_started(self) -> None:
        pass

    def request_finished(self, result: BatchResult | None, seconds: float, request_bytes: int = -1) -> None:
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
        super().__init__(scope, receive, first_event=first_event, options=options)
        self.whole_body: bytes | None = None
        """The request's body when the first event held all of it, else None (read ``stream``)."""
        if first_event is not None and not first_event.get("more_body", False):
            self.whole_body = first_event.get("body", b"")


class FunctionResource:
    """``POST`` a ``ToFunction`` batch, get its ``FromFunction``."""

    def __init__(self, handler: RequestReplyHandler, max_request_bytes: int, recorder: Recorder) -> None:
        self._dispatch = handler.dispatch_async
        self._limit = max_request_bytes
        self._recorder = recorder

    async def on_post(self, req: BatchRequest, resp: falcon.asgi.Response, function_name: str = "") -> None:
        recorder = self._recorder
        recorder.request_started()
        started = perf_counter()
        body = None
        result = None
        try:
            whole = req.whole_body
            body = whole if whole is not None and len(whole) <= self._limit else await self._read_body(req)
            result = await self._dispatch(body)
        finally:
            recorder.request_finished(result, perf_counter() - started, -1 if body is None else len(body))
        if result.error is not None:
            raise result.error
        resp.data = result.response
        resp.content_type = OCTET_STREAM

    async def _read_body(self, req: BatchRequest) -> bytes:
        """The body from Falcon's stream (it came in several events), or the 413 for one over the limit."""
        limit = self._limit
        length = req.content_length if req.whole_body is None else len(req.whole_body)
        if length is not None:
            # NOTE: the runtime always sends Content-Length; refuse an oversized body before reading it.
            if length > limit:
                raise RequestTooLargeError(
                    f"request body of {length} bytes is over the limit of {limit} bytes")
            body = await req.stream.readall()
            if len(body) < length:
                raise MalformedRequestError(
                    f"request body ended after {len(body)} of {length} bytes (client went away?)")
            return body
        chunks: list[bytes] = []
        size = 0
        async for chunk in req.stream:
            size += len(chunk)
            if size > limit:
                raise RequestTooLargeError(f"chunked request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

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
    """``GET /metrics``: what ``statefun_workers.metrics.render()`` returns, or 404 without it."""

    def __init__(self, render: Callable[[], tuple[bytes, str]] | None) -> None:
        self._render = render

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if self._render is None:
            raise falcon.HTTPNotFound(description="metrics are not installed (statefun_workers.metrics)")
        # NOTE: a multiprocess scrape reads one file per worker and type; keep that off the event loop.
        body, content_type = await asyncio.to_thread(self._render)
        resp.data = body
        resp.content_type = content_type


def _metrics_hook(name: str) -> Any:
    """``statefun_workers.metrics.<name>``, or None when the metrics module (or that name) is absent."""
    try:
        module = importlib.import_module("statefun_workers.metrics")
    except ModuleNotFoundError as ex:
        if ex.name != "statefun_workers.metrics":
            raise
        return None
    return getattr(module, name, None)


def _describe(ex: StatefunError) -> str:
    """The short answer body: what went wrong, naming the function where known, never a traceback."""
    text = ex.message
    if ex.typename and ex.typename not in text:
        text += f" (function {ex.typename}" + (f", id {ex.id!r})" if ex.id is not None else ")")
    return f"{ex.status} {ex.reason}: {text}\n"


class TracebackThrottle:
    """Whether to log a failure's traceback: at most once per ``interval`` seconds for one failure.

    The runtime re-sends a failing batch within milliseconds, again and again for up to its call budget (two
    minutes by default); one traceback per attempt would bury everything else in the log. Every failure is
    still logged, on one line; the traceback comes with the first one, and again once the interval has passed,
    with the number of attempts logged without it meanwhile. A failure is its reason, typename and address id.
    """

    __slots__ = ("interval", "_clock", "_seen")

    _MAX_KEYS = 4096

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._seen: dict[tuple[str, str | None, str | None], tuple[float, int]] = {}

    def check(self, key: tuple[str, str | None, str | None]) -> tuple[bool, int]:
        """(log the traceback now?, attempts logged without one since the last traceback)."""
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.interval:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False, seen[1] + 1
        if len(self._seen) >= self._MAX_KEYS:
            self._seen.clear()
        self._seen[key] = (now, 0)
        return True, 0 if seen is None else seen[1]


_THROTTLE = TracebackThrottle()


async def _handle_statefun_error(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: StatefunError,
                                 params: dict[str, Any]) -> None:
    status = ex.status
    with_traceback, suppressed = _THROTTLE.check((ex.reason, ex.typename, ex.id))
    fields: dict[str, Any] = {"status": status, "reason": ex.reason, "typename": ex.typename, "address_id": ex.id}
    if suppressed:
        fields["tracebacks_suppressed"] = suppressed
    if status >= 500 and status != 503:
        log.error("batch failed: %s", ex, exc_info=ex if with_traceback else None, extra=fields)
    else:
        log.warning("batch refused: %s", ex, exc_info=ex if with_traceback and ex.__cause__ is not None else None,
                    extra=fields)
    resp.status = status
    resp.content_type = _TEXT
    resp.text = _describe(ex)
    if status == 413:
        # NOTE: the rest of an oversized body may still be on the wire; closing beats reading it.
        resp.set_header("Connection", "close")


async def _handle_unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception,
                             params: dict[str, Any]) -> None:
    log.error("internal error on %s %s", req.method, req.path, exc_info=ex, extra={"status": 500})
    resp.status = 500
    resp.content_type = _TEXT
    resp.text = "500 internal_error: the server failed; see its logs\n"


def _serialize_http_error(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError) -> None:
    """Falcon's own errors (404, 405, bad headers) as short text, like ours, instead of JSON."""
    log.info("%s on %s %s", ex.status, req.method, req.path, extra={"status": ex.status_code})
    resp.content_type = _TEXT
    resp.text = f"{ex.title}" + (f": {ex.description}" if ex.description else "") + "\n"


def create_app(functions: StatefulFunctions, *, settings: Settings | None = None,
               recorder: Recorder | None = None,
               readiness: Readiness | None = None) -> falcon.asgi.App[BatchRequest, falcon.asgi.Response]:
    """Build the ASGI app serving ``functions``.

    Args:
        functions: the registry to serve (freeze it before gunicorn forks).
        settings: limits; the defaults of :class:`Settings` when None.
        recorder: per-request hooks; when None, ``statefun_workers.metrics.make_recorder(typenames)`` if the
            metrics module is there. Pass :class:`NullRecorder` for no metrics.
        readiness: what ``/readyz`` reports; this process's :data:`PROCESS_READINESS` when None.
    """
    settings = settings or Settings()
    build_info.serve_typenames(functions.functions)
    if recorder is None:
        make_recorder = _metrics_hook("make_recorder")
        recorder = NullRecorder() if make_recorder is None else make_recorder(sorted(functions.functions))
    app = falcon.asgi.App(request_type=BatchRequest)
    executor = None
    if settings.blocking_threads is not None:
        # NOTE: threads start on first use, in a worker; none exist in the master when gunicorn forks.
        executor = ThreadPoolExecutor(settings.blocking_threads, thread_name_prefix="statefun-blocking")
    handler = RequestReplyHandler(functions, executor=executor)
    function_resource = FunctionResource(handler, settings.max_request_bytes,
                                         recorder)
    app.add_route("/statefun", function_resource)
    app.add_route("/statefun/{function_name}", function_resource)
    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", ReadyResource(readiness or PROCESS_READINESS))
    app.add_route("/metrics", MetricsResource(_metrics_hook("render")))
    app.add_sink(function_resource.sink, "/")
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(StatefunError, _handle_statefun_error)
    app.set_error_serializer(_serialize_http_error)
    return app
