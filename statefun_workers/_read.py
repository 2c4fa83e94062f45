"""Reading a ToFunction: the request's bytes into the few plain values the handler uses.

PERF: protobuf's parser is fast, but each field read afterwards through the generated classes costs a
Python attribute lookup and an object; a request of one message needs a dozen of them. This module, compiled
by mypyc (setup.py), walks the bytes once and keeps only what the handler reads. It follows the rules of
protobuf's upb parser exactly; tests/core/test_read*.py and the fuzzers in fuzz/ hold it to the generated
classes with generated, mangled and fuzzed inputs (docs/fuzzing.md):

* fields may come in any order; a scalar field seen twice keeps the last value;
* a singular message field seen twice is merged: read as its payloads concatenated, once each reads alone;
* keys and lengths take at most five bytes, other varints ten;
* unknown fields, and known field numbers with another wire type, are skipped, unknown groups included;
* field number 0 is refused, except inside an unknown group, where upb accepts it;
* a string must be valid UTF-8;
* messages and groups nest at most ``MAX_DEPTH`` deep (docs/fuzzing.md, "Nesting").

Anything else (a truncated field, a varint over ten bytes, a bad wire type, nesting past the bound) raises
``ValueError``. Nothing here recurses: the message levels are fixed by the schema, and groups, the one
construct the sender can nest at will, are skipped in a loop with an explicit depth, so a hostile body cannot
exhaust the C stack of the compiled code.
"""

from __future__ import annotations

from typing import Final

from google.protobuf.internal import api_implementation
from google.protobuf.message import DecodeError

from ._proto.request_reply_pb2 import ToFunction

__all__ = ["MAX_DEPTH", "Address", "Invocation", "Request", "Value", "read", "read_to_function", "read_with_protobuf"]


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


class Request:
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

MAX_DEPTH: Final = 100
"""How deep messages and groups may nest below the ToFunction: a group in the ToFunction is at depth 1, a group
in its InvocationBatchRequest at depth 2. protobuf's upb parser (the default backend) allows the same 100,
counted the same way, so both accept and refuse the same requests."""

# Wire types, and the field numbers this reader keeps (request-reply.proto), named as _wire.py names the tags it
# writes. PERF: Final ints are constants in the compiled code.
VARINT: Final = 0
FIXED64: Final = 1
LENGTH_DELIMITED: Final = 2
START_GROUP: Final = 3
END_GROUP: Final = 4
FIXED32: Final = 5
TO_FUNCTION_INVOCATION: Final = 100  # ToFunction.invocation
BATCH_TARGET: Final = 1  # InvocationBatchRequest.target
BATCH_STATE: Final = 2  # InvocationBatchRequest.state
BATCH_INVOCATIONS: Final = 3  # InvocationBatchRequest.invocations
ADDRESS_NAMESPACE: Final = 1  # Address.namespace
ADDRESS_TYPE: Final = 2  # Address.type
ADDRESS_ID: Final = 3  # Address.id
VALUE_TYPENAME: Final = 1  # TypedValue.typename
VALUE_HAS_VALUE: Final = 2  # TypedValue.has_value
VALUE_VALUE: Final = 3  # TypedValue.value
PERSISTED_NAME: Final = 1  # PersistedValue.state_name
PERSISTED_VALUE: Final = 2  # PersistedValue.state_value
INVOCATION_CALLER: Final = 1  # Invocation.caller
INVOCATION_ARGUMENT: Final = 2  # Invocation.argument


def _varint(data: bytes, pos: int, end: int, max_bytes: int) -> tuple[int, int]:
    """Read a varint of at most ``max_bytes`` at ``pos``; return (value, position after it). protobuf reads
    values in up to ten bytes, and keys and lengths, which are 32-bit, in up to five."""
    result = 0
    shift = 0
    limit = 7 * max_bytes
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= limit:
            raise ValueError(f"varint longer than {max_bytes} bytes")


def _key(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read a field key; return (field number, wire type, position after it)."""
    byte = data[pos]
    if byte < 0x80:  # PERF: every field number below 16 fits one byte
        if byte < 8:
            raise ValueError("invalid field number")
        return byte >> 3, byte & 7, pos + 1
    key, pos = _varint(data, pos, end, 5)
    if key < 8 or key > 0xFFFFFFFF:
        raise ValueError("invalid field number")
    return key >> 3, key & 7, pos


def _group_key(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read a field key inside an unknown group, where protobuf's upb parser accepts field number 0 (it
    checks only the wire types there); return (field number, wire type, position after it)."""
    key, pos = _varint(data, pos, end, 5)
    if key > 0xFFFFFFFF:
        raise ValueError("invalid field key")
    return key >> 3, key & 7, pos


def _length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read the length of a length-delimited field; return (end of its payload, start of its payload)."""
    byte = data[pos] if pos < end else -1
    if 0 <= byte < 0x80:
        start = pos + 1
        stop = start + byte
    else:
        length, start = _varint(data, pos, end, 5)
        stop = start + length
    if stop > end:
        raise ValueError("truncated length-delimited field")
    return stop, start


def _skip(data: bytes, pos: int, end: int, number: int, wire_type: int, depth: int) -> int:
    """Skip the value of a field this reader does not keep, in a message at ``depth``; return the position
    after it."""
    if wire_type == START_GROUP:
        return _skip_group(data, pos, end, number, depth + 1)
    return _skip_scalar(data, pos, end, wire_type)


def _skip_scalar(data: bytes, pos: int, end: int, wire_type: int) -> int:
    """Skip a value that is not a group; return the position after it."""
    if wire_type == VARINT:
        return _varint(data, pos, end, 10)[1]
    if wire_type == LENGTH_DELIMITED:
        return _length(data, pos, end)[0]
    if wire_type == FIXED64:
        pos += 8
    elif wire_type == FIXED32:
        pos += 4
    else:
        raise ValueError(f"unsupported wire type {wire_type}")
    if pos > end:
        raise ValueError("truncated field")
    return pos


def _skip_group(data: bytes, pos: int, end: int, number: int, depth: int) -> int:
    """Skip an unknown group (a proto2 construct, still valid on the wire) that starts at ``depth``, with the
    groups nested in it; return the position after its end. A loop, not recursion: see the module's doc."""
    numbers = [number]  # the field numbers of the open groups, innermost last
    while True:
        if depth > MAX_DEPTH:
            raise ValueError(f"messages and groups nested more than {MAX_DEPTH} deep")
        if pos >= end:
            raise ValueError("truncated group")
        inner, wire_type, pos = _group_key(data, pos, end)
        if wire_type == END_GROUP:
            if inner != numbers.pop():
                raise ValueError("mismatched end of group")
            if not numbers:
                return pos
            depth -= 1
        elif wire_type == START_GROUP:
            depth += 1
            numbers.append(inner)
        else:
            pos = _skip_scalar(data, pos, end, wire_type)


def _walk(data: bytes, pos: int, end: int, depth: int) -> None:
    """Walk the fields of a message at ``depth`` without reading them: refuse what is not whole fields."""
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        pos = _skip(data, pos, end, number, wire_type, depth)


def _text(data: bytes, start: int, stop: int) -> str:
    try:
        return data[start:stop].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("a string field is not valid UTF-8") from None


class _Ranges:
    """The occurrences of one singular sub-message field. Seen more than once, they merge, which is the same
    as reading their payloads concatenated once each has been walked alone: protobuf reads them one at a time,
    so a field cut in two by the boundary is refused. Rare: the runtime writes each once."""

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

    def merged(self, depth: int) -> tuple[bytes, int, int]:
        """The bytes to read the merged message (at ``depth``) from, after walking each occurrence alone."""
        if self.more is None:
            return self.data, self.start, self.end
        for piece in self.more:
            _walk(piece, 0, len(piece), depth)
        joined = _EMPTY.join(self.more)
        return joined, 0, len(joined)


def _address(data: bytes, pos: int, end: int, depth: int) -> Address:
    """An Address at ``depth``: 2 for the target, 3 for a caller."""
    namespace = type_ = id_ = ""
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        if wire_type == LENGTH_DELIMITED and ADDRESS_NAMESPACE <= number <= ADDRESS_ID:
            stop, start = _length(data, pos, end)
            if number == ADDRESS_NAMESPACE:
                namespace = _text(data, start, stop)
            elif number == ADDRESS_TYPE:
                type_ = _text(data, start, stop)
            else:
                id_ = _text(data, start, stop)
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type, depth)
    return Address(namespace, type_, id_)


def _value(data: bytes, pos: int, end: int, depth: int) -> Value:
    """A TypedValue at ``depth``: always 3 (a state value, or a message's argument)."""
    first = pos
    typename = ""
    has_value = False
    value = _EMPTY
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        if number == VALUE_TYPENAME and wire_type == LENGTH_DELIMITED:
            stop, start = _length(data, pos, end)
            typename = _text(data, start, stop)
            pos = stop
        elif number == VALUE_HAS_VALUE and wire_type == VARINT:
            flag, pos = _varint(data, pos, end, 10)
            has_value = flag != 0
        elif number == VALUE_VALUE and wire_type == LENGTH_DELIMITED:
            stop, start = _length(data, pos, end)
            value = data[start:stop]
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type, depth)
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
        if wire_type == LENGTH_DELIMITED and (number == PERSISTED_NAME or number == PERSISTED_VALUE):
            stop, start = _length(data, pos, end)
            if number == PERSISTED_NAME:
                name = _text(data, start, stop)
            else:
                values = _sub_message_ranges(values, data, start, stop)
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type, 2)
    if values is None:
        return name, None
    merged, start, stop = values.merged(3)
    return name, _value(merged, start, stop, 3)


def _invocation(data: bytes, pos: int, end: int) -> Invocation:
    callers: _Ranges | None = None
    arguments: _Ranges | None = None
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        if wire_type == LENGTH_DELIMITED and (number == INVOCATION_CALLER or number == INVOCATION_ARGUMENT):
            stop, start = _length(data, pos, end)
            if number == INVOCATION_CALLER:
                callers = _sub_message_ranges(callers, data, start, stop)
            else:
                arguments = _sub_message_ranges(arguments, data, start, stop)
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type, 2)
    caller = None
    if callers is not None:
        merged, start, stop = callers.merged(3)
        caller = _address(merged, start, stop, 3)
    if arguments is None:
        return Invocation(caller, Value("", False, _EMPTY, _EMPTY, 0, 0))
    merged, start, stop = arguments.merged(3)
    return Invocation(caller, _value(merged, start, stop, 3))


def _request(data: bytes, pos: int, end: int, depth: int) -> Request:
    """An InvocationBatchRequest at ``depth``: always 1."""
    targets: _Ranges | None = None
    state: list[tuple[str, Value | None]] = []
    invocations: list[Invocation] = []
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        if wire_type == LENGTH_DELIMITED and BATCH_TARGET <= number <= BATCH_INVOCATIONS:
            stop, start = _length(data, pos, end)
            if number == BATCH_TARGET:
                targets = _sub_message_ranges(targets, data, start, stop)
            elif number == BATCH_STATE:
                state.append(_persisted_value(data, start, stop))
            else:
                invocations.append(_invocation(data, start, stop))
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type, depth)
    if targets is None:
        target = Address("", "", "")
    else:
        merged, start, stop = targets.merged(depth + 1)
        target = _address(merged, start, stop, depth + 1)
    return Request(True, target, state, invocations)


def read_to_function(data: bytes) -> Request:
    """Read a serialized ToFunction; ``ValueError`` if it is not one."""
    end = len(data)
    pos = 0
    batches: _Ranges | None = None
    while pos < end:
        number, wire_type, pos = _key(data, pos, end)
        if number == TO_FUNCTION_INVOCATION and wire_type == LENGTH_DELIMITED:
            stop, start = _length(data, pos, end)
            batches = _sub_message_ranges(batches, data, start, stop)
            pos = stop
        else:
            pos = _skip(data, pos, end, number, wire_type, 0)
    if batches is None:
        batch = _request(_EMPTY, 0, 0, 1)
        batch.present = False
        return batch
    merged, start, stop = batches.merged(1)
    return _request(merged, start, stop, 1)


def read_with_protobuf(data: bytes) -> Request:
    """The same reading through protobuf's own parser.

    PERF: this module's reader is fast once compiled by mypyc and slower than protobuf's C parser when it runs as
    plain Python (an install without a C compiler); ``read`` picks the faster of the two.
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
    return Request(request.HasField("invocation"), Address(target.namespace, target.type, target.id), state,
                 invocations)


read = read_with_protobuf if __file__.endswith(".py") and api_implementation.Type() == "upb" else read_to_function
"""The reader this process uses: this module's own when compiled; as plain Python, protobuf's when its backend is
upb (the C parser, faster), and this module's on protobuf's pure-Python backend (about 4x faster than that
backend, and bounded: protobuf 3.20's recurses into nested groups until Python's RecursionError)."""
