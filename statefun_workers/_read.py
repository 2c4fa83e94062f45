"""Reading a ToFunction: the request's bytes into the few plain values the handler uses.

PERF: protobuf's parser is fast, but each field read afterwards through the generated classes costs a
Python attribute lookup and an object; a request of one message needs a dozen of them. This module, compiled
by mypyc (setup.py), walks the bytes once and keeps only what the handler reads. It follows protobuf's rules
exactly, and tests/core/test_read.py holds it to the generated classes with generated and mangled inputs:

* fields may come in any order; a scalar field seen twice keeps the last value;
* a singular message field seen twice is merged, which is the same as parsing its payloads concatenated;
* unknown fields, and known field numbers with another wire type, are skipped; groups are refused;
* a string must be valid UTF-8.

Anything else (a truncated field, a varint over ten bytes, a bad wire type) raises ``ValueError``.
"""

from __future__ import annotations

from typing import Final

from google.protobuf.message import DecodeError

from ._proto.request_reply_pb2 import ToFunction

__all__ = ["Address", "Batch", "Invocation", "Value", "read", "read_to_function", "read_with_protobuf"]


class Value:
    """A TypedValue: typename, has_value, value, and where in the request it was (to forward it as sent)."""

    __slots__ = ("typename", "has_value", "value", "_data", "_start", "_end")

    def __init__(self, typename: str, has_value: bool, value: bytes, data: bytes, start: int, end: int) -> None:
        self.typename = typename
        self.has_value = has_value
        self.value = value
        self._data = data
        self._start = start
        self._end = end

    @property
    def payload(self) -> bytes:
        """The TypedValue's bytes as they were in the request."""
        return self._data[self._start:self._end]


class Address:
    """An Address: namespace, type, id."""

    __slots__ = ("namespace", "type", "id")

    def __init__(self, namespace: str, type: str, id: str) -> None:
        self.namespace = namespace
        self.type = type
        self.id = id


class Invocation:
    """One message of the batch: its caller (None when absent) and its argument (empty when absent)."""

    __slots__ = ("caller", "argument")

    def __init__(self, caller: Address | None, argument: Value) -> None:
        self.caller = caller
        self.argument = argument


class Batch:
    """An InvocationBatchRequest; ``present`` is False when the ToFunction had none."""

    __slots__ = ("present", "target", "state", "invocations")

    def __init__(self, present: bool, target: Address, state: list[tuple[str, Value | None]],
                 invocations: list[Invocation]) -> None:
        self.present = present
        self.target = target
        self.state = state
        """(state name, value or None when the PersistedValue had no state_value), in request order."""
        self.invocations = invocations


_EMPTY: Final = b""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a varint at ``pos``; return (value, position after it)."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than ten bytes")


def _key(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read a field key; return (field number, wire type, position after it)."""
    byte = data[pos]
    if byte < 0x80:  # PERF: every field number below 16 fits one byte
        if byte < 8:
            raise ValueError("invalid field number")
        return byte >> 3, byte & 7, pos + 1
    key, pos = _varint(data, pos, end)
    if key < 8 or key > 0xFFFFFFFF:
        raise ValueError("invalid field number")
    return key >> 3, key & 7, pos


def _length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read the length of a length-delimited field; return (end of its payload, start of its payload)."""
    byte = data[pos] if pos < end else -1
    if 0 <= byte < 0x80:
        start = pos + 1
        stop = start + byte
    else:
        length, start = _varint(data, pos, end)
        stop = start + length
    if stop > end:
        raise ValueError("truncated length-delimited field")
    return stop, start


def _skip(data: bytes, pos: int, end: int, number: int, wire_type: int) -> int:
    """Skip the value of a field this reader does not keep; return the position after it."""
    if wire_type == 0:
        return _varint(data, pos, end)[1]
    if wire_type == 2:
        return _length(data, pos, end)[0]
    if wire_type == 1:
        pos += 8
    elif wire_type == 5:
        pos += 4
    elif wire_type == 3:
        return _skip_group(data, pos, end, number)
    else:
        raise ValueError(f"unsupported wire type {wire_type}")
    if pos > end:
        raise ValueError("truncated field")
    return pos


def _skip_group(data: bytes, pos: int, end: int, number: int) -> int:
    """Skip an unknown group (a proto2 construct, still valid on the wire); return the position after it."""
    while True:
        if pos >= end:
            raise ValueError("truncated group")
        inner, wire_type, pos = _key(data, pos, end)
        if wire_type == 4:
            if inner != number:
                raise ValueError("mismatched end of group")
            return pos
        pos = _skip(data, pos, end, inner, wire_type)


def _text(data: bytes, start: int, stop: int) -> str:
    try:
        return data[start:stop].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("a string field is not valid UTF-8") from None


class _Ranges:
    """The occurrences of one singular sub-message field. Seen more than once, they merge, which is the same
    as reading their payloads concatenated (rare: the runtime writes each once)."""

    __slots__ = ("data", "start", "end", "more")

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data = data
        self.start = start
        self.end = end
        self.more: list[bytes] | None = None

    def add(self, start: int, end: int) -> None:
        if self.more is None:
            self.more = [self.data[self.start:self.end]]
        self.more.append(self.data[start:end])

    def merged(self) -> tuple[bytes, int, int]:
        if self.more is None:
            return self.data, self.start, self.end
        joined = _EMPTY.join(self.more)
        return joined, 0, len(joined)


def _address(data: bytes, pos: int, end: int) -> Address:
    namespace = type_ = id_ = ""
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        if wire_type == 2 and 1 <= number <= 3:
            stop, start = _length(data, pos, end)
            if number == 1:
                namespace = _text(data, start, stop)
            elif number == 2:
                type_ = _text(data, start, stop)
            else:
                id_ = _text(data, start, stop)
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type)
    return Address(namespace, type_, id_)


def _value(data: bytes, pos: int, end: int) -> Value:
    first = pos
    typename = ""
    has_value = False
    value = _EMPTY
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        if number == 1 and wire_type == 2:
            stop, start = _length(data, pos, end)
            typename = _text(data, start, stop)
            pos = stop
        elif number == 2 and wire_type == 0:
            flag, pos = _varint(data, pos, end)
            has_value = flag != 0
        elif number == 3 and wire_type == 2:
            stop, start = _length(data, pos, end)
            value = data[start:stop]
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type)
    return Value(typename, has_value, value, data, first, end)


def _sub_message_ranges(ranges: _Ranges | None, data: bytes, start: int, stop: int) -> _Ranges:
    if ranges is None:
        return _Ranges(data, start, stop)
    ranges.add(start, stop)
    return ranges


def _persisted_value(data: bytes, pos: int, end: int) -> tuple[str, Value | None]:
    name = ""
    values: _Ranges | None = None
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        if wire_type == 2 and (number == 1 or number == 2):
            stop, start = _length(data, pos, end)
            if number == 1:
                name = _text(data, start, stop)
            else:
                values = _sub_message_ranges(values, data, start, stop)
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type)
    if values is None:
        return name, None
    merged, start, stop = values.merged()
    return name, _value(merged, start, stop)


def _invocation(data: bytes, pos: int, end: int) -> Invocation:
    callers: _Ranges | None = None
    arguments: _Ranges | None = None
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        if wire_type == 2 and (number == 1 or number == 2):
            stop, start = _length(data, pos, end)
            if number == 1:
                callers = _sub_message_ranges(callers, data, start, stop)
            else:
                arguments = _sub_message_ranges(arguments, data, start, stop)
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type)
    caller = None
    if callers is not None:
        merged, start, stop = callers.merged()
        caller = _address(merged, start, stop)
    if arguments is None:
        return Invocation(caller, Value("", False, _EMPTY, _EMPTY, 0, 0))
    merged, start, stop = arguments.merged()
    return Invocation(caller, _value(merged, start, stop))


def _batch(data: bytes, pos: int, end: int, present: bool) -> Batch:
    targets: _Ranges | None = None
    state: list[tuple[str, Value | None]] = []
    invocations: list[Invocation] = []
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        if wire_type == 2 and 1 <= number <= 3:
            stop, start = _length(data, pos, end)
            if number == 1:
                targets = _sub_message_ranges(targets, data, start, stop)
            elif number == 2:
                state.append(_persisted_value(data, start, stop))
            else:
                invocations.append(_invocation(data, start, stop))
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type)
    if targets is None:
        target = Address("", "", "")
    else:
        merged, start, stop = targets.merged()
        target = _address(merged, start, stop)
    return Batch(present, target, state, invocations)


def read_to_function(data: bytes) -> Batch:
    """Read a serialized ToFunction; ``ValueError`` if it is not one."""
    end = len(data)
    pos = 0
    batches: _Ranges | None = None
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        if number == 100 and wire_type == 2:
            stop, start = _length(data, pos, end)
            batches = _sub_message_ranges(batches, data, start, stop)
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type)
    if batches is None:
        return _batch(_EMPTY, 0, 0, False)
    merged, start, stop = batches.merged()
    return _batch(merged, start, stop, True)


def read_with_protobuf(data: bytes) -> Batch:
    """The same reading through protobuf's own parser.

    PERF: this module's reader is fast once compiled by mypyc and several times slower than protobuf's C parser
    when it runs as plain Python (an install without a C compiler); ``read`` picks the faster of the two.
    """
    try:
        request = ToFunction.FromString(data)
    except DecodeError as ex:
        raise ValueError(str(ex) or "not a ToFunction") from None
    batch = request.invocation
    target = batch.target
    state: list[tuple[str, Value | None]] = []
    for persisted in batch.state:
        value = None
        if persisted.HasField("state_value"):
            tv = persisted.state_value
            value = Value(tv.typename, tv.has_value, tv.value, _EMPTY, 0, 0)
        state.append((persisted.state_name, value))
    invocations: list[Invocation] = []
    for invocation in batch.invocations:
        caller = None
        if invocation.HasField("caller"):
            address = invocation.caller
            caller = Address(address.namespace, address.type, address.id)
        tv = invocation.argument
        payload = tv.SerializeToString()
        invocations.append(Invocation(caller, Value(tv.typename, tv.has_value, tv.value, payload, 0, len(payload))))
    return Batch(request.HasField("invocation"), Address(target.namespace, target.type, target.id), state,
                 invocations)


read = read_with_protobuf if __file__.endswith(".py") else read_to_function
"""The reader this process uses: this module's own when compiled, protobuf's otherwise."""
