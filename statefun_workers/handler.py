"""The request-reply protocol: one ToFunction batch in, one FromFunction out. No HTTP here.

For each request: parse the ``ToFunction``; find the function bound to the target's typename; if a declared
state is absent from the request, answer ``IncompleteInvocationContext`` naming it (the runtime registers it and
re-sends the same batch); otherwise run the function once per message, in order, with one shared context and
storage, and answer one ``InvocationResponse`` with every effect. An exception anywhere fails the whole batch:
nothing the function did is answered, and the runtime re-sends the batch later (../shared/protocol.md §7).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import Awaitable, Coroutine
from typing import Any

from google.protobuf.message import DecodeError

from . import _wire
from ._proto.request_reply_pb2 import ToFunction
from ._wire import LEN, LEN_TABLE_SIZE, varint
from .context import _UNSET, Context
from .errors import FunctionError, MalformedRequestError, StatefunError, UnknownFunctionError
from .functions import StatefulFunction, StatefulFunctions
from .messages import Message, ReceivedMessage
from .storage import Cell

__all__ = ["BatchResult", "RequestReplyHandler"]


class BatchResult:
    """The outcome of one request: the response bytes or the error, and the figures metrics are made of."""

    __slots__ = ("response", "error", "outcome", "typename", "id", "invocations", "state_bytes_read",
                 "state_bytes_written", "messages", "delayed", "cancellations", "egresses")

    def __init__(self, response: bytes = b"", error: StatefunError | None = None, outcome: str = "ok",
                 typename: str | None = None, id: str | None = None, invocations: int = 0,
                 state_bytes_read: int = 0) -> None:
        self.response = response
        """The serialized FromFunction (``b""`` on error, and for a batch with no effects)."""
        self.error = error
        """The error that ended the request, or None."""
        self.outcome = outcome
        """``ok``, ``incomplete_context`` or ``error``."""
        self.typename = typename
        """The target's typename if a function is bound to it, else None."""
        self.id = id
        """The target's id, when the request got that far."""
        self.invocations = invocations
        """Messages in the batch."""
        self.state_bytes_read = state_bytes_read
        """Bytes of state values received."""
        self.state_bytes_written = 0
        """Bytes of state values sent back in MODIFY mutations."""
        self.messages = 0
        self.delayed = 0
        self.cancellations = 0
        self.egresses = 0

    def __repr__(self) -> str:
        return (f"BatchResult(outcome={self.outcome!r}, typename={self.typename!r}, "
                f"invocations={self.invocations}, response={len(self.response)} bytes, error={self.error!r})")


class _Batch:
    """A parsed request ready to run: the function, its context, its cells and its messages."""

    __slots__ = ("function", "context", "cells", "invocations", "result")

    def __init__(self, function: StatefulFunction, context: Context, cells: list[Cell],
                 invocations: Any, result: BatchResult) -> None:
        self.function = function
        self.context = context
        self.cells = cells
        self.invocations = invocations
        self.result = result


def _function_failed(batch: _Batch, index: int, ex: BaseException) -> FunctionError:
    function = batch.function
    detail = str(ex)
    if len(detail) > 200:
        detail = detail[:200] + "..."
    error = FunctionError(
        f"function {function.typename} (id {batch.context._id!r}) failed on message {index + 1} of "
        f"{len(batch.invocations)}: {type(ex).__name__}: {detail}",
        typename=function.typename, id=batch.context._id, invocation=index)
    error.__cause__ = ex
    return error


class RequestReplyHandler:
    """Handles request-reply batches for a registry of functions.

    ``handle_async`` and ``handle_sync`` answer the FromFunction bytes or raise a
    :class:`~statefun_workers.errors.StatefunError`; ``dispatch_async`` never raises one and returns a
    :class:`BatchResult` instead, with the figures the server's metrics need.

    ``executor`` runs the batches of functions bound with ``blocking=True``; by default a thread pool is made
    when first needed.
    """

    def __init__(self, functions: StatefulFunctions, *,
                 executor: concurrent.futures.Executor | None = None) -> None:
        if functions is None:
            raise ValueError("functions must be provided.")
        if not isinstance(functions, StatefulFunctions):
            raise TypeError(f"functions must be a StatefulFunctions registry, not {type(functions).__name__}")
        self.functions = functions
        self._by_type = functions._by_type
        self._executor = executor
        self._own_executor = False
        self._local = threading.local()
        self._background: asyncio.AbstractEventLoop | None = None
        self._loops: list[asyncio.AbstractEventLoop] = []
        """Every event loop this handler made (one per thread that called handle_sync for an async function,
        and the helper thread's); closed by close(), or when the handler is garbage-collected."""
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _close_loops, self._loops)

    def close(self) -> None:
        """Close the event loops and the thread pool this handler made; it must not be used afterwards."""
        self._finalizer()
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False)

    # --- the public entry points -------------------------------------------------------------------------

    async def handle_async(self, request_bytes: bytes) -> bytes:
        """Answer one request; run async functions on the running event loop."""
        result = await self.dispatch_async(request_bytes)
        if result.error is not None:
            raise result.error
        return result.response

    def handle_sync(self, request_bytes: bytes) -> bytes:
        """Answer one request from synchronous code (for example a WSGI view).

        Sync functions run directly, with no event loop at all. Async functions run on an event loop that this
        thread keeps for its next requests, or, when this thread is already running a loop, on a helper
        thread's loop (the official SDK made a new loop for every request, and failed inside a running one).
        """
        result = self.dispatch_sync(request_bytes)
        if result.error is not None:
            raise result.error
        return result.response

    async def dispatch_async(self, request_bytes: bytes) -> BatchResult:
        """Answer one request; the error, if any, is in the result rather than raised."""
        prepared = self._prepare(request_bytes)
        if type(prepared) is BatchResult:
            return prepared
        batch: _Batch = prepared  # type: ignore[assignment]
        function = batch.function
        if function.blocking:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._blocking_executor(), self._run_sync, batch)
        # PERF: one loop for both kinds: a sync function returns None and is never awaited.
        context, fun, index = batch.context, function.fun, 0
        typename, id = function.typename, context._id
        try:
            for index, invocation in enumerate(batch.invocations):  # noqa: B007 - the except clause reads index
                # PERF: Context._enter() inlined: this runs once per message.
                context._invocation = invocation
                context._caller = _UNSET
                outcome = fun(context, ReceivedMessage(typename, id, invocation.argument))
                if outcome is not None and hasattr(outcome, "__await__"):
                    await outcome
        except Exception as ex:
            return self._failed(batch, index, ex)
        return self._respond(batch)

    def dispatch_sync(self, request_bytes: bytes) -> BatchResult:
        """Answer one request from synchronous code; the error, if any, is in the result."""
        prepared = self._prepare(request_bytes)
        if type(prepared) is BatchResult:
            return prepared
        batch: _Batch = prepared  # type: ignore[assignment]
        if batch.function.is_async:
            return self._run_coroutine(self._run_async(batch))
        return self._run_sync(batch)

    # --- the steps ---------------------------------------------------------------------------------------

    def _prepare(self, request_bytes: bytes) -> _Batch | BatchResult:
        """Parse, find the function, resolve the state: a batch to run, or the result already."""
        try:
            request = ToFunction.FromString(request_bytes)
        except (DecodeError, TypeError) as ex:
            return _refused(MalformedRequestError(
                f"the request body is not a ToFunction protobuf message ({len(request_bytes)} bytes)"), ex)
        # PERF: no HasField("invocation") up front; an absent batch has an empty target and is caught below.
        batch = request.invocation
        target = batch.target
        namespace, name, id = target.namespace, target.type, target.id
        function = self._by_type.get((namespace, name))
        if function is None:
            if not request.HasField("invocation"):
                return _refused(MalformedRequestError(
                    "the request has no invocation batch (ToFunction.invocation)"))
            if not namespace and not name:
                return _refused(MalformedRequestError("the request names no target function type"))
            return _refused(UnknownFunctionError(
                f"no function is bound to {namespace}/{name} on this worker", typename=f"{namespace}/{name}",
                id=id))
        invocations = batch.invocations
        result = BatchResult(typename=function.typename, id=id, invocations=len(invocations))

        # NOTE: a state sent by name only (registered, but without a value) is present, not missing: asking
        # for it again would make the runtime loop forever (../shared/protocol.md §7 item 3).
        received: dict[str, Any] = {}
        read = 0
        for persisted in batch.state:
            value = persisted.state_value
            received[persisted.state_name] = value
            read += len(value.value)
        result.state_bytes_read = read
        if function.specs:
            if not function.spec_names <= received.keys():
                missing = [_wire.field_bytes(_wire.MISSING_VALUE, spec._missing_spec)
                           for spec in function.specs if spec.name not in received]
                result.outcome = "incomplete_context"
                result.invocations = 0
                result.response = _wire.field_bytes(_wire.INCOMPLETE_CONTEXT, b"".join(missing))
                return result
            cells = [Cell(received[name], typename, decode, check)
                     for name, typename, decode, check in function.cell_args]
        else:
            cells = []
        context = Context(namespace, name, id, function.storage_class(cells))
        return _Batch(function, context, cells, invocations, result)

    def _run_sync(self, batch: _Batch) -> BatchResult:
        function = batch.function
        context, fun, index = batch.context, function.fun, 0
        try:
            for index, invocation in enumerate(batch.invocations):  # noqa: B007 - the except clause reads index
                context._enter(invocation)
                outcome = fun(context, ReceivedMessage(function.typename, context._id, invocation.argument))
                if outcome is not None and hasattr(outcome, "__await__"):
                    self._run_coroutine(_awaited(outcome))
        except Exception as ex:
            return self._failed(batch, index, ex)
        return self._respond(batch)

    async def _run_async(self, batch: _Batch) -> BatchResult:
        function = batch.function
        context, fun, index = batch.context, function.fun, 0
        try:
            for index, invocation in enumerate(batch.invocations):  # noqa: B007 - the except clause reads index
                context._enter(invocation)
                await fun(context, ReceivedMessage(function.typename, context._id, invocation.argument))
        except Exception as ex:
            return self._failed(batch, index, ex)
        return self._respond(batch)

    def _failed(self, batch: _Batch, index: int, ex: Exception) -> BatchResult:
        result = batch.result
        result.outcome = "error"
        result.error = _function_failed(batch, index, ex)
        return result

    def _respond(self, batch: _Batch) -> BatchResult:
        """Encode every effect of a successful batch as one InvocationResponse.

        PERF: the hottest loop of a request; the protobuf framing is written inline (tag, length from the
        LEN table, payload) rather than through _wire's helpers. tests/core/test_wire.py holds it to the
        generated classes' bytes.
        """
        result = batch.result
        context = batch.context
        function = batch.function
        parts: list[bytes] = []
        append = parts.append
        written = 0
        for index, cell in enumerate(batch.cells):
            if not cell.dirty:
                continue
            value = cell.value
            if value is None:
                append(function.delete_mutations[index])
                continue
            try:
                data = function.encoders[index](value)
            except Exception as ex:
                return self._unserializable(batch, index, ex)
            written += len(data)
            n = len(data)
            tv = (function.value_prefixes[index] + b"\x1a" + (LEN[n] if n < LEN_TABLE_SIZE else varint(n)) + data
                  if n else function.value_prefixes[index])
            n = len(tv)
            mutation = function.modify_prefixes[index] + (LEN[n] if n < LEN_TABLE_SIZE else varint(n)) + tv
            n = len(mutation)
            append(b"\x0a" + (LEN[n] if n < LEN_TABLE_SIZE else varint(n)) + mutation)
        for target, message in context.messages:
            append(_outgoing_message(target, message))
        cancellations = 0
        for delay, target, delayed, token in context.delayed:
            if delayed is None:
                cancellations += 1
                append(_wire.field_bytes(_wire.DELAYED_INVOCATION, _wire.cancellation(token or "")))
                continue
            append(_delayed_message(delay, target, delayed, token))
        for target, egress in context.egresses:
            tv = egress._encoded or egress.encoded_value()
            n = len(tv)
            body = target + b"\x1a" + (LEN[n] if n < LEN_TABLE_SIZE else varint(n)) + tv
            n = len(body)
            append(b"\x22" + (LEN[n] if n < LEN_TABLE_SIZE else varint(n)) + body)
        result.state_bytes_written = written
        result.messages = len(context.messages)
        result.delayed = len(context.delayed) - cancellations
        result.cancellations = cancellations
        result.egresses = len(context.egresses)
        if parts:
            body = b"".join(parts)
            n = len(body)
            result.response = b"\xa2\x06" + (LEN[n] if n < LEN_TABLE_SIZE else varint(n)) + body
        return result

    def _unserializable(self, batch: _Batch, index: int, ex: Exception) -> BatchResult:
        result = batch.result
        spec = batch.function.specs[index]
        typename, id = batch.function.typename, batch.context._id
        result.outcome = "error"
        result.error = FunctionError(
            f"function {typename} (id {id!r}): state {spec.name!r} could not be serialized as "
            f"{spec.type.typename}: {type(ex).__name__}: {ex}", typename=typename, id=id)
        result.error.__cause__ = ex
        return result

    # --- running coroutines and blocking functions -------------------------------------------------------

    def _run_coroutine(self, coroutine: Coroutine[Any, Any, BatchResult]) -> BatchResult:
        """Run a coroutine to completion from synchronous code, without a new event loop per call."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            loop = getattr(self._local, "loop", None)
            if loop is None or loop.is_closed():
                loop = self._local.loop = asyncio.new_event_loop()
                with self._lock:
                    self._loops.append(loop)
            return loop.run_until_complete(coroutine)
        # This thread already runs a loop (handle_sync called from async code): use the helper thread's.
        return asyncio.run_coroutine_threadsafe(coroutine, self._background_loop()).result()

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._background is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="statefun-handle-sync", daemon=True).start()
                self._background = loop
                self._loops.append(loop)
            return self._background

    def _blocking_executor(self) -> concurrent.futures.Executor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        thread_name_prefix="statefun-blocking")
                    self._own_executor = True
        return self._executor


def _address(target: bytes, message: Message) -> bytes:
    """Address bytes: the cached namespace and type fields, then the id (omitted when empty)."""
    target_id = message.target_id.encode("utf-8")
    n = len(target_id)
    if not n:
        return target
    return target + b"\x1a" + (LEN[n] if n < LEN_TABLE_SIZE else varint(n)) + target_id


def _outgoing_message(target: bytes, message: Message) -> bytes:
    """InvocationResponse.outgoing_messages entry: Invocation {target = 1, argument = 2}, framed."""
    address = _address(target, message)
    tv = message._encoded or message.encoded_value()
    n, m = len(address), len(tv)
    body = (b"\x0a" + (LEN[n] if n < LEN_TABLE_SIZE else varint(n)) + address
            + b"\x12" + (LEN[m] if m < LEN_TABLE_SIZE else varint(m)) + tv)
    n = len(body)
    return b"\x12" + (LEN[n] if n < LEN_TABLE_SIZE else varint(n)) + body


def _delayed_message(delay: int, target: bytes, message: Message, token: str | None) -> bytes:
    """InvocationResponse.delayed_invocations entry for a delayed send, framed."""
    body = _wire.delayed_invocation(delay, _address(target, message), message._encoded or message.encoded_value(),
                                    token or "")
    n = len(body)
    return b"\x1a" + (LEN[n] if n < LEN_TABLE_SIZE else varint(n)) + body


def _close_loops(loops: list[asyncio.AbstractEventLoop]) -> None:
    for loop in loops:
        if loop.is_running():  # the helper thread's loop: stop it from its own thread, then close
            loop.call_soon_threadsafe(loop.stop)
            while loop.is_running():
                threading.Event().wait(0.001)
        if not loop.is_closed():
            loop.close()
    loops.clear()


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _refused(error: StatefunError, cause: BaseException | None = None) -> BatchResult:
    if cause is not None:
        error.__cause__ = cause
    return BatchResult(error=error, outcome="error", id=error.id)
