"""The protocol's hot path: read a ToFunction, resolve the state, run sync functions, encode the FromFunction.

``handler.RequestReplyHandler`` is the public face; this module holds the steps it strings together for each
request. Requests are read by ``_read`` and responses written by ``_wire``, both by hand. PERF: setup.py
compiles these modules with mypyc; they are also plain, type-checked Python that runs as it is where no
compiler is available.
"""

from __future__ import annotations

from typing import Any

from . import _wire
from ._read import Value
from ._read import read as read_request
from .cells import Cell
from .context import _UNSET, Context
from .errors import FunctionError, MalformedRequestError, StatefunError, UnknownFunctionError
from .functions import StatefulFunction
from .messages import Message, ReceivedMessage

__all__ = ["Batch", "BatchResult", "failed", "go_on", "prepare", "respond", "run_ready", "run_sync"]


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


class Batch:
    """A parsed request ready to run: the function, its context, its cells and its messages."""

    __slots__ = ("function", "context", "cells", "invocations", "result", "index", "pending")

    def __init__(self, function: StatefulFunction, context: Context, cells: list[Cell],
                 invocations: Any, result: BatchResult) -> None:
        self.function = function
        self.context = context
        self.cells = cells
        self.invocations = invocations
        self.result = result
        self.index = 0
        """The message being handled (for the error, if it raises)."""
        self.pending: Any = None
        """What a sync function returned for message ``index`` when that was an awaitable (see go_on)."""


def _function_failed(batch: Batch, index: int, ex: BaseException) -> FunctionError:
    function = batch.function
    detail = str(ex)
    if len(detail) > 200:
        detail = detail[:200] + "..."
    error = FunctionError(
        f"function {function.typename} (id {batch.context._id!r}) failed on message {index + 1} of "
        f"{len(batch.invocations)}: {type(ex).__name__}",
        typename=function.typename, id=batch.context._id, invocation=index, detail=detail)
    error.__cause__ = ex
    return error


def prepare(by_type: dict[tuple[str, str], StatefulFunction], request_bytes: Any) -> Batch | BatchResult:
    """Parse, find the function, resolve the state: a batch to run, or the result already (an error, or the
    IncompleteInvocationContext naming the state the runtime must register first)."""
    if type(request_bytes) is not bytes:
        if not isinstance(request_bytes, (bytes, bytearray, memoryview)):
            return _refused(MalformedRequestError(
                f"the request body is not a ToFunction protobuf message (a {type(request_bytes).__name__}, "
                f"not bytes)"))
        request_bytes = bytes(request_bytes)
    try:
        batch = read_request(request_bytes)
    except ValueError as ex:
        return _refused(MalformedRequestError(
            f"the request body is not a ToFunction protobuf message ({len(request_bytes)} bytes: {ex})"), ex)
    target = batch.target
    namespace, name, id = target.namespace, target.type, target.id
    function = by_type.get((namespace, name))
    if function is None:
        if not batch.present:
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
    # for it again would make the runtime loop forever (docs/protocol.md, edge case 3).
    received: dict[str, Value | None] = {}
    read = 0
    for state_name, value in batch.state:
        received[state_name] = value
        if value is not None:
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
    return Batch(function, context, cells, invocations, result)



def run_ready(by_type: dict[tuple[str, str], StatefulFunction], request_bytes: Any) -> Batch | BatchResult:
    """All of a request that needs neither an event loop nor a thread, in one call: prepare it and, for a plain
    sync function, run it and answer (``go_on``). A Batch comes back for the caller to finish: an async or a
    blocking function's, not started, or one whose sync function returned an awaitable (``batch.pending``)."""
    prepared = prepare(by_type, request_bytes)
    if isinstance(prepared, BatchResult):
        return prepared
    function = prepared.function
    if function.is_async or function.blocking:
        return prepared
    return go_on(prepared, 0)


def go_on(batch: Batch, start: int) -> Batch | BatchResult:
    """Run a sync function from message ``start`` on: the answer (a failure included), or the batch with
    ``pending`` set when the function returned an awaitable; await it, then go on from ``batch.index + 1``."""
    try:
        index, pending = run_sync(batch, start)
    except Exception as ex:
        return failed(batch, batch.index, ex)
    if pending is not None:
        batch.index = index
        batch.pending = pending
        return batch
    return respond(batch)


def run_sync(batch: Batch, start: int) -> tuple[int, Any]:
    """Run a sync function on the messages from ``start`` on; returns ``(index, None)`` once all have run.

    A sync function that returns an awaitable (an undetected async function) stops the loop: the result is
    ``(index, awaitable)``, and the caller awaits it and goes on from ``index + 1``. An exception propagates,
    with ``batch.index`` naming the message that raised it.
    """
    function = batch.function
    context, fun = batch.context, function.fun
    typename, id = function.typename, context._id
    invocations = batch.invocations
    index = start
    count = len(invocations)
    while index < count:
        invocation = invocations[index]
        batch.index = index
        # PERF: Context._enter() inlined: this runs once per message.
        context._invocation = invocation
        context._caller = _UNSET
        outcome = fun(context, ReceivedMessage(typename, id, invocation.argument))
        if outcome is not None and hasattr(outcome, "__await__"):
            return index, outcome
        index += 1
    return index, None


def failed(batch: Batch, index: int, ex: Exception) -> BatchResult:
    """The batch failed at message ``index``: a FunctionError, with the exception as its cause."""
    result = batch.result
    result.outcome = "error"
    result.error = _function_failed(batch, index, ex)
    return result



def respond(batch: Batch) -> BatchResult:
    """Encode every effect of a successful batch as one InvocationResponse (fields in field-number order)."""
    result = batch.result
    context = batch.context
    function = batch.function
    parts: list[bytes] = []
    written = 0
    for index, cell in enumerate(batch.cells):
        if not cell.dirty:
            continue
        if cell.value is None:
            parts.append(function.delete_mutations[index])
            continue
        try:
            data = function.encoders[index](cell.value)
        except Exception as ex:
            return _unserializable(batch, index, ex)
        written += len(data)
        state_value = _wire.with_value(function.value_prefixes[index], data)
        parts.append(_wire.field_bytes(_wire.STATE_MUTATION, function.modify_prefixes[index]
                                       + _wire.field_bytes(b"\x1a", state_value)))
    for target, message in context.messages:
        parts.append(_wire.field_bytes(_wire.OUTGOING_MESSAGE, _wire.invocation(
            _address_bytes(target, message), message.encoded_value())))
    cancellations = 0
    for delay, target, delayed, token in context.delayed:
        if delayed is None:
            cancellations += 1
            parts.append(_wire.field_bytes(_wire.DELAYED_INVOCATION, _wire.cancellation(token or "")))
        else:
            parts.append(_wire.field_bytes(_wire.DELAYED_INVOCATION, _wire.delayed_invocation(
                delay, _address_bytes(target, delayed), delayed.encoded_value(), token or "")))
    for target, egress in context.egresses:
        parts.append(_wire.field_bytes(_wire.OUTGOING_EGRESS, _wire.egress(target, egress.encoded_value())))
    result.state_bytes_written = written
    result.messages = len(context.messages)
    result.delayed = len(context.delayed) - cancellations
    result.cancellations = cancellations
    result.egresses = len(context.egresses)
    if parts:
        result.response = _wire.field_bytes(_wire.INVOCATION_RESULT, b"".join(parts))
    return result


def _unserializable(batch: Batch, index: int, ex: Exception) -> BatchResult:
    result = batch.result
    spec = batch.function.specs[index]
    typename, id = batch.function.typename, batch.context._id
    result.outcome = "error"
    result.error = FunctionError(
        f"function {typename} (id {id!r}): state {spec.name!r} could not be serialized as "
        f"{spec.type.typename}: {type(ex).__name__}", typename=typename, id=id, detail=str(ex)[:200])
    result.error.__cause__ = ex
    return result

# --- running coroutines and blocking functions -------------------------------------------------------



def _address_bytes(target: bytes, message: Message) -> bytes:
    """Address bytes: the cached namespace and type fields (context.encoded_target), then the id."""
    return target + _wire.optional_str(b"\x1a", message.target_id)


def _refused(error: StatefunError, cause: BaseException | None = None) -> BatchResult:
    if cause is not None:
        error.__cause__ = cause
    return BatchResult(error=error, outcome="error", id=error.id)
