"""The hand-written ToFunction reader sees exactly what protobuf's parser sees, or refuses what it refuses."""

from __future__ import annotations

import os
import random
import subprocess
import sys

from hypothesis import example, given, settings
from hypothesis import strategies as st

from fuzz import oracle
from fuzz.builds import ROOT
from fuzz.oracle import protobufs
from statefun_workers import _read, _wire
from statefun_workers._proto.request_reply_pb2 import ToFunction, TypedValue
from statefun_workers._read import read_to_function, read_with_protobuf

text = st.text(max_size=12) | st.text(min_size=130, max_size=200)
blob = st.binary(max_size=12) | st.binary(min_size=130, max_size=300)


def ours(data: bytes, reader=read_to_function):
    """Our reading, as plain data; or the string 'refused'."""
    return oracle.ours(data, reader)


addresses = st.tuples(text, text, text)
values = st.tuples(text, st.booleans(), blob)


@st.composite
def requests(draw):
    request = ToFunction()
    if draw(st.booleans()):
        batch = request.invocation
        if draw(st.booleans()):
            batch.target.namespace, batch.target.type, batch.target.id = draw(addresses)
        for name in draw(st.lists(text, max_size=3)):
            state = batch.state.add(state_name=name)
            if draw(st.booleans()):
                typename, has, value = draw(values)
                state.state_value.CopyFrom(TypedValue(typename=typename, has_value=has, value=value))
        for _ in range(draw(st.integers(0, 3))):
            invocation = batch.invocations.add()
            if draw(st.booleans()):
                invocation.caller.namespace, invocation.caller.type, invocation.caller.id = draw(addresses)
            if draw(st.booleans()):
                typename, has, value = draw(values)
                invocation.argument.CopyFrom(TypedValue(typename=typename, has_value=has, value=value))
    return request.SerializeToString()


# Unknown fields of every wire type, including a group, and known numbers with the wrong wire type.
unknown_fields = st.sampled_from([
    b"\x20\x05", b"\x29" + bytes(8), b"\x35" + bytes(4), b"\x3a\x02hi", b"\x43\x48\x01\x44",
    b"\x08\x01", b"\x0d\x00\x00\x00\x00", b"\xa0\x06\x01", b"\xfa\x3e\x00",
])


@settings(max_examples=300)
@given(requests())
def test_canonical_requests(data):
    assert ours(data) == protobufs(data)
    assert ours(data, read_with_protobuf) == protobufs(data)


def test_the_compiled_reader_is_the_one_in_use_when_compiled():
    """Compiled, the module's own reader is faster than protobuf's; as plain Python it is slower than upb's."""
    compiled = not _read.__file__.endswith(".py")
    assert _read.read is (read_to_function if compiled else read_with_protobuf)


def test_as_plain_python_on_protobufs_python_backend_the_modules_own_reader_is_used():
    """protobuf's pure-Python backend is slower than this reader, and 3.20's has no nesting bound."""
    done = subprocess.run(
        [sys.executable, "-c", "from fuzz import builds; builds.select('pure'); from statefun_workers import _read; "
         "print(_read.read.__name__)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"})
    assert done.stdout.strip() == "read_to_function"


@settings(max_examples=300)
@given(requests(), requests())
def test_two_requests_concatenated_are_merged(a, b):
    assert ours(a + b) == protobufs(a + b)
    assert ours(a + b, read_with_protobuf) == protobufs(a + b)


def _mangle(data: bytes, rnd: random.Random, extras: list[bytes]) -> bytes:
    """Re-encode a request the ways protobuf allows: fields shuffled, unknown fields and groups inserted at
    every level, and singular sub-messages split over two occurrences (which a parser must merge)."""
    request = ToFunction.FromString(data)

    def frame(tag: bytes, payload: bytes) -> bytes:
        return _wire.field_bytes(tag, payload)

    def shuffled(fields: list[bytes]) -> bytes:
        fields = fields + [rnd.choice(extras) for _ in range(rnd.randrange(3))]
        rnd.shuffle(fields)
        return b"".join(fields)

    def sub_message(tag: bytes, fields: list[bytes]) -> list[bytes]:
        """One occurrence of a singular sub-message field, or two that merge into the same message."""
        if len(fields) > 1 and rnd.random() < 0.5:
            cut = rnd.randrange(1, len(fields))
            return [frame(tag, shuffled(fields[:cut])), frame(tag, shuffled(fields[cut:]))]
        return [frame(tag, shuffled(fields))]

    def typed_fields(value) -> list[bytes]:
        fields = []
        if value.typename:
            fields.append(frame(b"\x0a", value.typename.encode()))
        if value.has_value:
            fields.append(b"\x10\x01")
        if value.value:
            fields.append(frame(b"\x1a", value.value))
        return fields

    def address_fields(a) -> list[bytes]:
        parts = [(b"\x0a", a.namespace), (b"\x12", a.type), (b"\x1a", a.id)]
        return [frame(tag, s.encode()) for tag, s in parts if s]

    if not request.HasField("invocation"):
        return shuffled([])
    batch = request.invocation
    fields = sub_message(b"\x0a", address_fields(batch.target))
    for state in batch.state:
        inner = [frame(b"\x0a", state.state_name.encode())]
        if state.HasField("state_value"):
            inner += sub_message(b"\x12", typed_fields(state.state_value))
        fields.append(frame(b"\x12", shuffled(inner)))
    invocations = []
    for invocation in batch.invocations:
        inner = []
        if invocation.HasField("caller"):
            inner += sub_message(b"\x0a", address_fields(invocation.caller))
        inner += sub_message(b"\x12", typed_fields(invocation.argument))
        invocations.append(frame(b"\x1a", shuffled(inner)))
    # Repeated fields keep their relative order; everything else may move.
    body = shuffled(fields) + b"".join(invocations)
    return shuffled(sub_message(b"\xa2\x06", [body]))


@settings(max_examples=300)
@given(requests(), st.randoms(use_true_random=False), st.lists(unknown_fields, min_size=1, max_size=4))
def test_reordered_fields_unknown_fields_and_groups(data, rnd, extras):
    mangled = _mangle(data, rnd, extras)
    assert ours(mangled) == protobufs(mangled)


@settings(max_examples=500)
@given(st.binary(max_size=64))
@example(b"\xa2\x06\x05\x0a\x03\x0a\x01\xff")  # a target namespace that is not UTF-8
@example(b"\xa2\x06\x02\x0f\x00")  # wire type 7
@example(b"\x80" * 11)  # a varint over ten bytes
@example(b"\xa2\x06\x0a")  # a length past the end
@example(b"\xa3\x06\x08\x01\xa4\x06")  # the ToFunction's own field number used as a group
@example(b"\xf8\xff\xff\xff\x7f\x01")  # a field key over 32 bits
def test_arbitrary_bytes(data):
    assert ours(data) == protobufs(data)
    assert ours(data, read_with_protobuf) == protobufs(data)


@settings(max_examples=300)
@given(requests(), st.data())
def test_truncated_and_flipped_requests(data, draw):
    if data:
        cut = draw.draw(st.integers(0, len(data) - 1))
        assert ours(data[:cut]) == protobufs(data[:cut])
        flip = draw.draw(st.integers(0, len(data) - 1))
        flipped = data[:flip] + bytes([data[flip] ^ draw.draw(st.integers(1, 255))]) + data[flip + 1:]
        assert ours(flipped) == protobufs(flipped)
