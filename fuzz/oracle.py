"""The oracle shared by the fuzzers and the property tests: what a reading of a ToFunction must agree with.

protobuf's own parser (the generated ``ToFunction``, upb backend) decides what is a ToFunction. A reader of
``statefun_workers._read`` must refuse exactly what it refuses, with ``ValueError`` and nothing else, and read
the same content from what it accepts. The handler must refuse what it refuses with MalformedRequestError, and
for what it accepts answer a FromFunction or raise one of the documented errors (statefun_workers/errors.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

REFUSED = "refused"
"""A reading's outcome when the bytes are not a ToFunction."""


class Disagreement(AssertionError):
    """A reader or the handler decided otherwise than protobuf's parser (a finding)."""


def _address(address: Any) -> tuple[str, str, str]:
    return (address.namespace, address.type, address.id)


def _value(value: Any) -> tuple[str, bool, bytes]:
    return (value.typename, value.has_value, bytes(value.value))


def ours(data: bytes, reader: Callable[[bytes], Any]) -> Any:
    """A reader's reading of ``data`` as plain data, or REFUSED; an exception other than ValueError escapes."""
    from statefun_workers._proto.request_reply_pb2 import TypedValue

    try:
        batch = reader(data)
    except ValueError:
        return REFUSED
    state = [(name, None if value is None else _value(value)) for name, value in batch.state]
    invocations = [(None if i.caller is None else _address(i.caller), _value(i.argument))
                   for i in batch.invocations]
    # The argument is forwarded as it was sent: its bytes must be the TypedValue protobuf read.
    forwarded = [TypedValue.FromString(i.argument.payload).SerializeToString() for i in batch.invocations]
    return batch.present, _address(batch.target), state, invocations, forwarded


def protobufs(data: bytes) -> Any:
    """protobuf's reading of ``data`` as the same plain data, or REFUSED."""
    from statefun_workers._proto.request_reply_pb2 import ToFunction

    try:
        request = ToFunction.FromString(data)
    except DecodeError:
        return REFUSED
    batch = request.invocation
    state = [(p.state_name, _value(p.state_value) if p.HasField("state_value") else None) for p in batch.state]
    invocations = [(_address(i.caller) if i.HasField("caller") else None, _value(i.argument))
                   for i in batch.invocations]
    forwarded = [i.argument.SerializeToString() for i in batch.invocations]
    return request.HasField("invocation"), _address(batch.target), state, invocations, forwarded


def check_readers(data: bytes, readers: list[Callable[[bytes], Any]]) -> Any:
    """Every reader reads ``data`` as protobuf does; return protobuf's reading."""
    expected = protobufs(data)
    for reader in readers:
        got = ours(data, reader)
        if got != expected:
            raise Disagreement(f"{reader.__module__}.{reader.__name__} read {_short(got)}, protobuf "
                               f"{_short(expected)}, from {len(data)} bytes {data[:64]!r}")
    return expected


INTERNAL_ERRORS = (AssertionError, NameError, RecursionError, SystemError, UnboundLocalError)
"""Causes of a FunctionError that mean a bug of ours, not the function's answer to a strange message."""


def check_handler(handler: Any, data: bytes, expected: Any = None) -> None:
    """``handler.handle_sync(data)`` refuses exactly what protobuf refuses, answers a FromFunction or raises a
    documented error otherwise; anything else escapes (a crash, for the fuzzer)."""
    from statefun_workers._proto.request_reply_pb2 import FromFunction
    from statefun_workers.errors import FunctionError, MalformedRequestError, StatefunError

    refused = (protobufs(data) if expected is None else expected) == REFUSED
    try:
        response = handler.handle_sync(data)
    except MalformedRequestError as ex:
        # The reader's refusal carries the reader's ValueError; the other refusals (no batch, no target) none.
        if (ex.__cause__ is not None) != refused:
            raise Disagreement(f"handler: {ex!r}, but protobuf {'refuses' if refused else 'accepts'} "
                               f"{data[:64]!r}") from ex
        return
    except StatefunError as ex:
        if refused:
            raise Disagreement(f"handler: {ex!r} for bytes protobuf refuses: {data[:64]!r}") from ex
        if isinstance(ex, FunctionError) and isinstance(ex.__cause__, INTERNAL_ERRORS):
            raise Disagreement(f"handler: internal error {ex.__cause__!r}") from ex
        return
    if refused:
        raise Disagreement(f"handler answered bytes protobuf refuses: {data[:64]!r}")
    if type(response) is not bytes:
        raise Disagreement(f"handler answered a {type(response).__name__}, not bytes")
    try:
        FromFunction.FromString(response)
    except DecodeError as ex:
        raise Disagreement(f"handler answered bytes that are not a FromFunction: {response[:64]!r}") from ex


def _short(reading: Any) -> str:
    text = repr(reading)
    return text if len(text) < 300 else text[:300] + "..."
