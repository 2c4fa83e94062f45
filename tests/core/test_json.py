"""JSON values: ``_json.loads`` gives what ``json.loads`` gives; ``_json.dumps`` writes the official SDK's value, in
orjson's spelling for plain values and in the official SDK's very bytes (or exception) for every other value."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import math
import re
import uuid

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


LONG_DIGIT_RUN = re.compile(rb"[0-9]{19}")
"""The oracle for the guard: 19 ASCII digits in a row, anywhere."""

DIGIT_RUN_TEXTS = st.lists(
    st.tuples(st.integers(min_value=0, max_value=40), st.binary(min_size=1, max_size=3)),
    max_size=12,
).map(lambda parts: b"".join(b"7" * digits + other for digits, other in parts))
"""Texts of digit runs around the guard's length, cut by arbitrary bytes (digits among them, so runs join)."""


@given(DIGIT_RUN_TEXTS | st.binary(max_size=200), st.integers(min_value=0, max_value=40))
def test_both_digit_run_scans_find_exactly_the_long_runs(data, shift):
    """The probing scan (compiled builds) and the translating one (interpreted) against a regular expression,
    at every offset against the probes' stride. Both run here, whichever build is installed."""
    text = b" " * shift + data
    expected = LONG_DIGIT_RUN.search(text) is not None
    assert _json._long_digit_run_probing(text) is expected
    assert _json._long_digit_run_translating(text) is expected


def test_digit_run_scans_at_every_edge_of_the_probes():
    """Every placement, against the stride, of a first run (which a probe may measure) and a second one a
    gap later, of lengths around the guard: each scan must agree with the regular expression on each."""
    for start in range(40):
        for first in range(21):
            for gap in (1, 2, 19):
                for second in (1, 18, 19, 20):
                    text = b"x" * start + b"5" * first + b"x" * gap + b"5" * second
                    for candidate in (text, text + b"x"):
                        expected = LONG_DIGIT_RUN.search(candidate) is not None
                        assert _json._long_digit_run_probing(candidate) is expected, candidate
                        assert _json._long_digit_run_translating(candidate) is expected, candidate


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


OFFICIAL = official_make_json_type("t/json").serializer()
OURS = make_json_type("t/json").serializer()

PLAIN_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.lists(children, max_size=3).map(tuple)
    | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)
"""Values of exactly the types orjson writes as ``json.dumps`` does: they take the fast path."""


def plain(value: object, depth: int = 0) -> bool:
    """The test's own statement of which values orjson writes (an independent twin of ``_json._plain`` plus what
    orjson refuses): exact types, finite floats, 64-bit integers, ``str`` keys, no lone surrogates, containers
    at most 250 deep (orjson refuses past 254)."""
    if type(value) in (list, tuple, dict) and depth >= 250:
        return False
    if type(value) is str:
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if type(value) is int:
        return -(1 << 63) <= value < (1 << 64)
    if type(value) is float:
        return math.isfinite(value)
    if value is None or type(value) is bool:
        return True
    if type(value) in (list, tuple):
        return all(plain(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(type(k) is str and plain(k) and plain(v, depth + 1) for k, v in value.items())
    return False


class Text(str):
    def __str__(self) -> str:
        return "own"


class Number(int):
    def __repr__(self) -> str:
        return "own"


class Real(float):
    def __repr__(self) -> str:
        return "own"


class Mapping(dict):
    def items(self):
        return [("own", 1)]


class Sequence(list):
    def __iter__(self):
        return iter(["own"])


class Colour(enum.Enum):
    RED = 1


class Size(enum.IntEnum):
    BIG = 2


class Letter(str, enum.Enum):
    A = "a"


@dataclasses.dataclass
class Point:
    x: int = 1


Pair = collections.namedtuple("Pair", "left right")

ODD_LEAVES = st.sampled_from([
    math.nan, math.inf, -math.inf, 1 << 64, -(1 << 63) - 1, 10**30, -(10**40),
    Text("t"), Number(7), Real(2.5), Mapping(a=1), Sequence([1, 2]), Size.BIG, Letter.A, Pair(1, "x"),
    {1: "int key"}, {2.5: "float key"}, {True: "bool key"}, {None: "None key"}, {Text("k"): "str subclass key"},
    collections.OrderedDict(b=1, a=2), collections.defaultdict(list, a=[1]), True,
])
"""Values whose meaning a fast encoder would change, or that orjson refuses: the standard library writes them."""

ODD_TEXT = st.text(max_size=5) | st.text(st.characters(min_codepoint=0xD7FE, max_codepoint=0xE001), max_size=3)
"""Text, sometimes with a lone surrogate (which orjson refuses and UTF-8 cannot hold)."""

ODD_VALUES = st.recursive(
    ODD_LEAVES | st.integers() | st.floats() | ODD_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(ODD_TEXT, children, max_size=4),
    max_leaves=12,
)


def write_outcome(serializer, value):
    try:
        return "ok", serializer.serialize(value)
    except Exception as ex:  # noqa: BLE001  (which exception, and its message, is the point)
        return "error", (type(ex), str(ex))


def assert_writes_the_official_value(value: object) -> None:
    """The contract: plain values the same value in orjson's bytes; every other value the official SDK's exact
    bytes or exception."""
    ours, official = write_outcome(OURS, value), write_outcome(OFFICIAL, value)
    if plain(value):
        assert ours == ("ok", orjson.dumps(value)), value  # the fast path is the one taken
        assert official[0] == "ok"
        assert same(json.loads(ours[1]), json.loads(official[1])), (value, ours, official)
    else:
        assert ours == official, (value, ours, official)


def test_orjson_is_what_writes_when_it_can():
    assert _json._fast_dumps is orjson.dumps
    assert OURS.serialize({"a": [1, 2.5, None, True, "é"]}) == b'{"a":[1,2.5,null,true,"\xc3\xa9"]}'


@given(PLAIN_VALUES)
def test_writes_plain_values_as_the_same_value(value):
    assert_writes_the_official_value(value)


@given(ODD_VALUES)
def test_writes_other_values_as_the_official_sdk_does(value):
    assert_writes_the_official_value(value)


@given(JSON_VALUES)
def test_writes_the_official_value_of_json_values(value):
    assert_writes_the_official_value(value)


@pytest.mark.parametrize("value", [
    1e16, 1e-7, 5e-324, 1.7976931348623157e308, -0.0, 0.0, 1.0, 0.1, 123456789.123456789, 2.0**63, -(2.0**70),
    (1 << 64) - 1, 1 << 64, -(1 << 63), -(1 << 63) - 1, math.nan, [math.inf], {"a": -math.inf},
    "\x00\x1f\x7f\u2028\u2029\ufeff\"\\/", "\U0001f600", "", [], {}, (), ((),), [[]], {"": {"": {}}},
    {"b": 1, "a": 2, "c": {"z": 0, "y": 1}},   # key order is kept
    Text("t"), Number(7), Real(2.5), Mapping(a=1), Sequence([1, 2]), Size.BIG, Letter.A, Pair(1, 2),
    {1: 2}, {1.5: 2}, {False: 1}, {None: 1}, {Text("k"): 1}, {"a": 1, 2: "b"},
    collections.OrderedDict(b=1, a=2), collections.defaultdict(int, a=1), [True, False, None],
])
def test_edge_cases_write_the_official_value(value):
    assert_writes_the_official_value(value)


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [249, 250, 251, 254, 255, 256, 400, 2000])
def test_deep_values_write_the_official_value_or_fail_alike(depth):
    """orjson refuses past 254 levels and json.dumps past the recursion limit: past 250, the standard library
    decides, with its own bytes or its own RecursionError."""
    assert_writes_the_official_value(nested(depth))
    assert_writes_the_official_value({"a": nested(depth)})


def circular_list() -> list:
    value: list = [1]
    value.append(value)
    return value


def circular_dict() -> dict:
    value: dict = {"a": 1}
    value["b"] = value
    return value


@pytest.mark.parametrize("value", [
    {1, 2}, frozenset(), object(), b"bytes", bytearray(b"x"), 1j, decimal.Decimal("1.5"),
    uuid.UUID(int=5), Colour.RED, Point(), datetime.datetime(2020, 1, 2, 3, 4), datetime.date(2020, 1, 2),
    datetime.time(1, 2), datetime.timedelta(1), orjson.Fragment(b"[1]"), [uuid.UUID(int=1)], {"a": Colour.RED},
    {"a": [Point()]}, "\ud800", ["\udfff"], {"\ud800": 1}, circular_list(), circular_dict(), {(1, 2): 3},
])
def test_what_the_official_sdk_cannot_write_fails_alike(value):
    """orjson writes UUIDs, enums, dataclasses, datetimes and fragments, which json.dumps refuses: ours refuses
    them too, with the official SDK's exception and message."""
    ours, official = write_outcome(OURS, value), write_outcome(OFFICIAL, value)
    assert official[0] == "error"
    assert ours == official


def test_without_orjson_the_standard_library_writes(monkeypatch):
    monkeypatch.setattr(_json, "_fast_dumps", None)
    value = {"a": [1, 2.5, "x", 1e16]}
    assert OURS.serialize(value) == OFFICIAL.serialize(value)


def test_without_orjson_json_loads_reads(monkeypatch):
    monkeypatch.setattr(_json, "_fast_loads", None)
    assert_reads_like_json(b'{"a": [1, 2.5, "x"]}')
    assert same(_json.loads(b'{"a": [1, 2.5, "x"]}'), {"a": [1, 2.5, "x"]})
