"""The built-in types' fast paths agree with the generated wrapper messages, value for value and error for error."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statefun_workers import BoolType, DoubleType, FloatType, IntType, LongType, StringType
from statefun_workers._proto import types_pb2

WRAPPERS = {
    IntType: types_pb2.IntWrapper,
    LongType: types_pb2.LongWrapper,
    BoolType: types_pb2.BooleanWrapper,
    StringType: types_pb2.StringWrapper,
    FloatType: types_pb2.FloatWrapper,
    DoubleType: types_pb2.DoubleWrapper,
}


class Index:
    """An int-like object (numpy integers look like this to protobuf)."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


anything = (st.integers(min_value=-(1 << 70), max_value=1 << 70) | st.booleans() | st.text(max_size=200)
            | st.text(alphabet=st.characters(categories=["Cs", "Ll"]), max_size=5)
            | st.floats(allow_nan=False) | st.binary(max_size=20) | st.none()
            | st.integers(min_value=-(1 << 40), max_value=1 << 40).map(Index))


def outcome(call):
    try:
        return "ok", call()
    except Exception as ex:  # the error kind must agree, not its message
        return "error", type(ex).__name__


def wrapper_encode(wrapper, value):
    message = wrapper()
    message.value = value
    return message.SerializeToString()


def wrapper_decode(wrapper, data):
    message = wrapper()
    message.ParseFromString(data)
    return message.value


@pytest.mark.parametrize("tpe", list(WRAPPERS), ids=lambda t: t.typename)
@given(value=anything)
def test_encode_and_normalize_agree_with_the_wrapper(tpe, value):
    """Encoding gives the wrapper's bytes or its error kind; normalizing gives what the stored value reads back
    as (encode, then decode, through the wrapper), or the same error kind."""
    wrapper = WRAPPERS[tpe]
    expected = outcome(lambda: wrapper_encode(wrapper, value))
    assert outcome(lambda: tpe.serializer().serialize(value)) == expected
    normalized = outcome(lambda: tpe.normalize(value))
    if expected[0] == "error":
        assert normalized == expected
    else:
        read_back = wrapper_decode(wrapper, expected[1])
        assert normalized[0] == "ok"
        assert normalized[1] == read_back or (read_back != read_back and normalized[1] != normalized[1])
        assert type(normalized[1]) is type(read_back)


@pytest.mark.parametrize("tpe", list(WRAPPERS), ids=lambda t: t.typename)
@given(data=st.binary(max_size=40))
def test_decode_of_any_bytes_agrees_with_the_wrapper(tpe, data):
    wrapper = WRAPPERS[tpe]
    expected = outcome(lambda: wrapper_decode(wrapper, data))
    got = outcome(lambda: tpe.serializer().deserialize(data))
    if expected[0] == "ok" and isinstance(expected[1], float) and math.isnan(expected[1]):
        assert got[0] == "ok" and math.isnan(got[1])
    else:
        assert got == expected


@pytest.mark.parametrize("tpe", [IntType, LongType, BoolType, StringType], ids=lambda t: t.typename)
@given(value=anything)
def test_decode_of_canonical_bytes_round_trips(tpe, value):
    wrapper = WRAPPERS[tpe]
    kind, data = outcome(lambda: wrapper_encode(wrapper, value))
    if kind == "ok":
        assert tpe.serializer().deserialize(data) == wrapper_decode(wrapper, data)
