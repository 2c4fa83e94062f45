"""Protobuf wire encoding of the few messages this package writes, by hand.

PERF: building upb messages field by field and serialising them costs several times more than joining the bytes
directly, and the response of every batch is made of these pieces. The encoders here emit exactly what
``SerializeToString()`` emits for the same message (fields in field-number order, proto3 defaults omitted, a set
sub-message always written, even when empty); ``tests/core/test_wire.py`` checks that byte for byte against the
generated classes with generated inputs. Reading stays with protobuf's C parser.
"""

from __future__ import annotations

from struct import Struct
from typing import Final

_BYTE: Final = [bytes((i,)) for i in range(256)]
"""Every one-byte ``bytes``. PERF: names compiled code reads on every call are ``Final``, which mypyc turns into
C statics; any other module-level name is looked up in the module's dict each time."""


def varint(value: int) -> bytes:
    """Encode a non-negative int, or a negative int64 as its ten-byte two's complement, as a varint."""
    if 0 <= value < 128:
        return _BYTE[value]
    if 0 < value < 16384:  # PERF: two bytes: the length of most responses and egress records
        return _BYTE[(value & 0x7F) | 0x80] + _BYTE[value >> 7]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 127:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_bytes(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field (string, bytes or sub-message) that is always written, even when empty."""
    n = len(data)
    if n < 128:
        return tag + _BYTE[n] + data
    return tag + varint(n) + data


def optional_bytes(tag: bytes, data: bytes) -> bytes:
    """A proto3 string or bytes field: omitted when empty."""
    return field_bytes(tag, data) if data else b""


def optional_str(tag: bytes, text: str) -> bytes:
    """A proto3 string field: omitted when empty."""
    if not text:
        return b""
    return field_bytes(tag, text.encode("utf-8"))


_PRESENT_PREFIXES: Final[dict[str, bytes]] = {}


def present_value(typename: str, value: bytes) -> bytes:
    """io.statefun.sdk.reqreply.TypedValue {typename = 1, has_value = 2, value = 3} with ``has_value`` set:
    what every builder and every state write produces.

    PERF: the typename and has_value fields are the same for every value of a type; they are encoded once.
    """
    prefix = _PRESENT_PREFIXES.get(typename)
    if prefix is None:
        prefix = value_prefix(typename)
        if len(_PRESENT_PREFIXES) < 4096:
            _PRESENT_PREFIXES[typename] = prefix
    return with_value(prefix, value)


def value_prefix(typename: str) -> bytes:
    """The fields of a present TypedValue before its value: typename and has_value."""
    return optional_str(b"\x0a", typename) + b"\x10\x01"


def with_value(prefix: bytes, value: bytes) -> bytes:
    """A present TypedValue from its prefix (see value_prefix) and its value bytes."""
    return prefix + optional_bytes(b"\x1a", value)


# Tags, named by message and field.
INVOCATION_RESULT: Final = b"\xa2\x06"  # FromFunction.invocation_result = 100
INCOMPLETE_CONTEXT: Final = b"\xaa\x06"  # FromFunction.incomplete_invocation_context = 101
STATE_MUTATION: Final = b"\x0a"  # InvocationResponse.state_mutations = 1
OUTGOING_MESSAGE: Final = b"\x12"  # InvocationResponse.outgoing_messages = 2
DELAYED_INVOCATION: Final = b"\x1a"  # InvocationResponse.delayed_invocations = 3
OUTGOING_EGRESS: Final = b"\x22"  # InvocationResponse.outgoing_egresses = 4
MISSING_VALUE: Final = b"\x0a"  # IncompleteInvocationContext.missing_values = 1

_MODIFY: Final = b"\x08\x01"  # PersistedValueMutation.mutation_type = MODIFY (DELETE = 0 is omitted)


def modify_prefix(state_name: str) -> bytes:
    """The fields of a PersistedValueMutation MODIFY before its state value: mutation_type and state_name.

    A MODIFY is ``modify_prefix(name) + field_bytes(b"\\x1a", state_value)``; the prefix is encoded once per spec.
    """
    return _MODIFY + optional_str(b"\x12", state_name)


def delete_mutation(state_name: str) -> bytes:
    """PersistedValueMutation DELETE: the mutation type is the default and is not written."""
    return optional_str(b"\x12", state_name)


def invocation(target: bytes, argument: bytes) -> bytes:
    """FromFunction.Invocation {target = 1, argument = 2}; both pre-encoded and always present."""
    return field_bytes(b"\x0a", target) + field_bytes(b"\x12", argument)


def delayed_invocation(delay_ms: int, target: bytes, argument: bytes, token: str) -> bytes:
    """DelayedInvocation {delay_in_ms = 1, target = 2, argument = 3, cancellation_token = 11}."""
    return ((b"\x08" + varint(delay_ms) if delay_ms else b"") + field_bytes(b"\x12", target)
            + field_bytes(b"\x1a", argument) + optional_str(b"\x5a", token))


def cancellation(token: str) -> bytes:
    """DelayedInvocation {is_cancellation_request = 10, cancellation_token = 11}."""
    return b"\x50\x01" + optional_str(b"\x5a", token)


def egress(target: bytes, argument: bytes) -> bytes:
    """FromFunction.EgressMessage {egress_namespace = 1, egress_type = 2, argument = 3}; ``target`` is the
    first two fields, encoded (as context.encoded_target gives them)."""
    return target + field_bytes(b"\x1a", argument)


def persisted_value_spec(state_name: str, expiration: bytes, type_typename: str) -> bytes:
    """PersistedValueSpec {state_name = 1, expiration_spec = 2 (always present), type_typename = 3}."""
    return optional_str(b"\x0a", state_name) + field_bytes(b"\x12", expiration) + optional_str(b"\x1a", type_typename)


def expiration_spec(mode: int, millis: int) -> bytes:
    """ExpirationSpec {mode = 1, expire_after_millis = 2}."""
    return (b"\x08" + varint(mode) if mode else b"") + (b"\x10" + varint(millis) if millis else b"")


def kafka_producer_record(key: str, value_bytes: bytes, topic: str) -> bytes:
    """io.statefun.sdk.egress.KafkaProducerRecord {key = 1, value_bytes = 2, topic = 3}."""
    return optional_str(b"\x0a", key) + optional_bytes(b"\x12", value_bytes) + optional_str(b"\x1a", topic)


def kinesis_egress_record(partition_key: str, value_bytes: bytes, stream: str, explicit_hash_key: str) -> bytes:
    """io.statefun.sdk.egress.KinesisEgressRecord {partition_key = 1, value_bytes = 2, stream = 3, hash = 4}."""
    return (optional_str(b"\x0a", partition_key) + optional_bytes(b"\x12", value_bytes)
            + optional_str(b"\x1a", stream) + optional_str(b"\x22", explicit_hash_key))


INT32: Final = Struct("<i")
INT64: Final = Struct("<q")
