"""JSON values: ``_json.loads`` gives what ``json.loads`` gives, ``_json.dumps`` writes what the official SDK writes."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from statefun import make_json_type as official_make_json_type

from statefun_workers import _json, make_json_type

orjson = pytest.importorskip("orjson")

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(1 << 70), max_value=1 << 70) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


def same(a: object, b: object) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True would hide a wrong reading)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def outcome(loads, data):
    try:
        return "ok", loads(data)
    except Exception as ex:  # noqa: BLE001  (which exception, and its message, is the point)
        return "error", (type(ex), str(ex))


def assert_reads_like_json(data: bytes) -> None:
    ours, theirs = outcome(_json.loads, data), outcome(json.loads, data)
    assert ours[0] == theirs[0], (data, ours, theirs)
    if ours[0] == "ok":
        assert same(ours[1], theirs[1]), (data, ours, theirs)
    else:
        assert ours[1] == theirs[1]


def test_orjson_is_what_reads_when_it_can():
    """The fast path is taken (a broken import would silently fall back and make the tests below vacuous)."""
    assert _json._fast_loads is orjson.loads


@given(JSON_VALUES, st.booleans())
def test_reads_what_json_loads_reads(value, ascii_only):
    assert_reads_like_json(json.dumps(value, ensure_ascii=ascii_only).encode("utf-8"))


@given(JSON_VALUES)
def test_reads_compact_and_spaced_texts_alike(value):
    assert_reads_like_json(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    assert_reads_like_json(json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8"))


@given(st.from_regex(r"-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?([eE][+-]?[0-9]{1,3})?", fullmatch=True))
def test_reads_numbers_below_the_digit_run_guard_exactly(number):
    """Up to 18 digits in a row orjson reads the number itself: it must round exactly as json.loads does."""
    assert_reads_like_json(number.encode("ascii"))
    assert_reads_like_json(f'{{"n": [{number}]}}'.encode("ascii"))


@given(st.binary(max_size=40))
def test_refuses_what_json_loads_refuses_with_the_same_error(data):
    assert_reads_like_json(data)


@given(st.text(alphabet='{}[]",:0123456789.eE+-tfrueanlsNI \\u', max_size=30))
def test_near_json_texts_read_or_fail_alike(text):
    assert_reads_like_json(text.encode("utf-8"))


@pytest.mark.parametrize("data", [
    b"18446744073709551615",         # 2**64 - 1: orjson reads it exactly, but it has 20 digits
    b"18446744073709551616",         # 2**64: orjson would answer a float
    b"-9223372036854775809",         # below -2**63: orjson would answer a float
    b'{"a": [1, 123456789012345678901234567890]}',
    b'"12345678901234567890"',       # a long digit run in a string: read by json.loads, same value
    b"1e400", b"-1e400", b"NaN", b"-Infinity", b"[NaN, 1]",
    b"\xef\xbb\xbf{}",              # a byte-order mark
    b'"\xed\xa0\x80"',              # a lone surrogate, UTF-8 encoded
    b'"\\ud800"', b'"\\ud83d\\ude00"',
    '{"a": 1}'.encode("utf-16"), '[1]'.encode("utf-32-le"),
    b'{"a": 1, "a": 2, "b": 3}',   # a repeated key: the last value, in the first key's place
    b"-0", b"-0.0", b"1E2", b"0.1", b"1.0000000000000000000001", b"5e-324", b"1.7976931348623157e308",
    b"", b" ", b"[1,]", b"{'a': 1}", b"01", b"1 2", b"\x00",
])
def test_edge_cases_read_like_json_loads(data):
    assert_reads_like_json(data)


def test_strings_go_to_json_loads():
    assert same(_json.loads('{"a": [1, 2.5]}'), {"a": [1, 2.5]})


@given(JSON_VALUES)
def test_writes_the_official_sdks_bytes(value):
    ours, official = make_json_type("t/json").serializer(), official_make_json_type("t/json").serializer()
    assert ours.serialize(value) == official.serialize(value)


def test_what_cannot_be_written_fails_as_in_the_official_sdk():
    ours, official = make_json_type("t/json").serializer(), official_make_json_type("t/json").serializer()
    for value in ({1, 2}, object(), "\ud800"):
        with pytest.raises(Exception) as theirs:
            official.serialize(value)
        with pytest.raises(theirs.type):
            ours.serialize(value)


def test_without_orjson_json_loads_reads(monkeypatch):
    monkeypatch.setattr(_json, "_fast_loads", None)
    assert_reads_like_json(b'{"a": [1, 2.5, "x"]}')
    assert same(_json.loads(b'{"a": [1, 2.5, "x"]}'), {"a": [1, 2.5, "x"]})
