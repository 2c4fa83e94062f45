"""Differential property test: on any bytes built from protobuf's wire forms, valid or not, the reader accepts
and refuses what protobuf's parser (upb) accepts and refuses, and reads the same content; so does the handler.

test_read.py starts from well-formed requests; this starts from the wire format itself: fields of every wire
type under any number (the schema's too, so known positions are reached), sub-messages, groups nested around the
bound, keys and varints in over-long forms, stray and mismatched end-group tags, then cuts and flipped bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from examples import functions
from fuzz.make_corpus import POSITIONS, groups
from fuzz.oracle import REFUSED, check_handler, check_readers
from statefun_workers import RequestReplyHandler, _wire
from statefun_workers._read import MAX_DEPTH, read, read_to_function, read_with_protobuf

READERS = list({read_to_function, read_with_protobuf, read})
HANDLER = RequestReplyHandler(functions)

numbers = st.sampled_from([1, 2, 3, 100]) | st.integers(0, 20) | st.sampled_from([2**29 - 1, 2**29, 2**32 - 1])


@st.composite
def keys(draw, number: int, wire_type: int) -> bytes:
    """A field key, sometimes padded to an over-long varint (five bytes are allowed, six are not)."""
    key = _wire.varint(((number << 3) | wire_type) & 0xFFFFFFFFFFFFFFFF)
    padding = draw(st.sampled_from([0, 0, 0, 1, 2, 3]))
    if padding and key[-1] < 0x80:
        key = key[:-1] + bytes([key[-1] | 0x80]) + b"\x80" * (padding - 1) + b"\x00"
    return key


@st.composite
def varints(draw) -> bytes:
    value = draw(st.integers(0, 2**64 - 1) | st.integers(0, 300))
    encoded = _wire.varint(value)
    if draw(st.integers(0, 5)) == 0:  # over-long: ten bytes are allowed, eleven are not
        encoded = encoded[:-1] + bytes([encoded[-1] | 0x80]) + b"\x80" * draw(st.integers(0, 9)) + b"\x00"
    return encoded


@st.composite
def scalar(draw) -> bytes:
    wire_type = draw(st.sampled_from([0, 1, 5, 6, 7]))
    key = draw(keys(draw(numbers), wire_type))
    if wire_type == 0:
        return key + draw(varints())
    if wire_type in (1, 5):
        return key + draw(st.binary(min_size=8 if wire_type == 1 else 4, max_size=8 if wire_type == 1 else 4))
    return key + draw(st.binary(max_size=2))


@st.composite
def length_delimited(draw, payload: st.SearchStrategy[bytes]) -> bytes:
    data = draw(payload)
    return draw(keys(draw(numbers), 2)) + _wire.varint(len(data)) + data


@st.composite
def group(draw, inside: st.SearchStrategy[bytes]) -> bytes:
    number = draw(numbers)
    end = number if draw(st.integers(0, 9)) else draw(numbers)  # now and then, the wrong end
    return draw(keys(number, 3)) + draw(inside) + draw(keys(end, 4))


strings = st.text(max_size=8).map(str.encode) | st.just(b"\xff\xfe") | st.binary(max_size=8)
deep = st.integers(MAX_DEPTH - 4, MAX_DEPTH + 2) | st.integers(0, 3) | st.just(300)
leaves = scalar() | length_delimited(strings) | deep.map(groups) | st.binary(min_size=1, max_size=3)


def _nest(inner: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    fields = st.lists(inner, max_size=4).map(b"".join)
    return length_delimited(fields) | group(fields)


messages = st.recursive(leaves, _nest, max_leaves=24)
bodies = st.lists(messages, max_size=5).map(b"".join)


@st.composite
def placed(draw) -> bytes:
    """A generated body, sometimes wrapped into a known position of a ToFunction."""
    body = draw(bodies)
    if draw(st.booleans()):
        body = POSITIONS[draw(st.sampled_from(sorted(POSITIONS)))][1](body)
    return body


@st.composite
def mutated(draw) -> bytes:
    body = draw(placed())
    if body and draw(st.booleans()):
        at = draw(st.integers(0, len(body) - 1))
        how = draw(st.sampled_from(["cut", "flip", "insert", "delete"]))
        if how == "cut":
            body = body[:at]
        elif how == "flip":
            body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1:]
        elif how == "insert":
            body = body[:at] + draw(st.binary(min_size=1, max_size=4)) + body[at:]
        else:
            body = body[:at] + body[at + draw(st.integers(1, 8)):]
    return body


@pytest.mark.slow
@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
@example(b"\x2b\x00\x01\x2c")  # field number 0 inside a group: upb accepts it there
@example(b"\x88\x80\x80\x80\x80\x00\x01")  # a six-byte key
@example(b"\x3a\x82\x80\x80\x80\x80\x00hi")  # a six-byte length
@example(b"\xa2\x06\x03p\x01 \xa2\x06\x03 p\x01")  # a batch in two parts, a field cut by the boundary
@example(b"\x2b" * (MAX_DEPTH + 1) + b"\x2c" * (MAX_DEPTH + 1))
def test_readers_and_handler_agree_with_protobuf(body):
    expected = check_readers(body, READERS)
    event("refused" if expected == REFUSED else "accepted")
    check_handler(HANDLER, body, expected)


@settings(max_examples=200, deadline=None)
@given(st.lists(placed(), min_size=2, max_size=3))
def test_concatenated_bodies_agree_with_protobuf(parts):
    """Concatenation merges singular sub-messages: every part must also be valid alone."""
    check_readers(b"".join(parts), READERS)
