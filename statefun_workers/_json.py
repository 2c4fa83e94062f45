"""JSON values of ``make_json_type``: the official SDK's values, in less time.

The official SDK reads with ``json.loads`` and writes ``json.dumps(value, ensure_ascii=False)`` as UTF-8. The
contract here (docs/json.md) is **the same value**: ``json.loads`` of our bytes equals ``json.loads`` of the
official SDK's, with keys in the same order, and every value whose meaning a fast encoder would change keeps
the standard library's exact behaviour (bytes or exception).

* Reading uses orjson (about 4x faster) when it is installed and is sure to give the value ``json.loads``
  gives. orjson refuses what it cannot read exactly like ``json.loads`` (NaN and Infinity, a byte-order mark,
  lone surrogates, UTF-16 or UTF-32 text, nesting past 1024), and those inputs go to ``json.loads``. The one
  value it reads differently, an integer outside 64 bits (orjson answers a float), cannot happen without a run
  of 19 or more digits, and any text with such a run goes to ``json.loads`` as well (:func:`_long_digit_run`
  finds one by probing every 19th byte, a tenth of the time a full pass took). One difference remains,
  in our favour: text nested nearly 1,000 deep, which ``json.loads`` refuses with ``RecursionError``, is read.
* Writing uses orjson (about 7x faster, the check below included) for *plain* values: built of exactly
  ``dict``, ``list``, ``tuple``, ``str``, ``int``, finite ``float``, ``bool`` and ``None``, no deeper than orjson
  goes. For those, orjson writes the same value in another spelling (no spaces; ``1e-7`` where ``repr`` writes
  ``1e-07``, both the shortest text that reads back as that float). The rest orjson refuses (an integer
  outside 64 bits, a key that is not exactly ``str``, a lone surrogate) and goes, with everything that is not
  plain, to the standard library's encoder: NaN stays ``NaN``, a subclass keeps its own encoding, and a UUID,
  enum, dataclass or datetime, which orjson would write, raises ``TypeError`` as in the official SDK.

``tests/core/test_json.py`` holds both to the standard library on generated values and texts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from mypy_extensions import i64

__all__ = ["dumps", "loads"]

try:
    from orjson import dumps as _orjson_dumps
    from orjson import loads as _orjson_loads
except ImportError:  # NOTE: orjson is a dependency, but a platform without its wheels may go without.
    _fast_loads: Callable[[Any], Any] | None = None
    _fast_dumps: Callable[[Any], bytes] | None = None
else:
    _fast_loads = _orjson_loads
    _fast_dumps = _orjson_dumps

_ENCODER = json.JSONEncoder(ensure_ascii=False)
"""What ``json.dumps(value, ensure_ascii=False)`` builds on each call."""

_RUN: Final = 19
"""Digits in a row from which orjson might read an integer differently: 2**63 has 19 digits."""

_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
"""A ``bytes.translate`` table: every digit to ``0``, every other byte to a space."""

_COMPILED: Final = not __file__.endswith(".py")
"""Whether mypyc compiled this module: its probing loop is then about 10x faster than a full pass, and about
6x slower when interpreted (on the 64 KB benchmark document)."""

_MAX_DEPTH: Final = 250
"""Containers nested deeper than this go to the standard library: orjson refuses past 254, and the check
below recurses once per level."""


def loads(data: Any) -> Any:
    """``json.loads(data)``: the same value, or the same exception."""
    if _fast_loads is not None and type(data) is bytes and not _long_digit_run(data):
        try:
            return _fast_loads(data)
        except ValueError:  # NOTE: orjson.JSONDecodeError; json.loads decides, and raises its own error.
            pass
    return json.loads(data)


def _long_digit_run(data: bytes) -> bool:
    """Whether ``data`` holds ``_RUN`` or more ASCII digits in a row (the compiled probe, else a full pass)."""
    return _long_digit_run_probing(data) if _COMPILED else _long_digit_run_translating(data)


def _long_digit_run_probing(data: bytes) -> bool:
    """Probe every ``_RUN``-th byte: a run of ``_RUN`` digits covers one probe whatever its start. A digit at a
    probe is measured both ways; the next probe that could start a new run is ``_RUN`` past the run's end."""
    size: i64 = len(data)
    probe: i64 = _RUN - 1
    while probe < size:
        if 0x30 <= data[probe] <= 0x39:
            start: i64 = probe - 1
            while start >= 0 and 0x30 <= data[start] <= 0x39:
                start -= 1
            end: i64 = probe + 1
            while end < size and 0x30 <= data[end] <= 0x39:
                end += 1
            if end - start - 1 >= _RUN:
                return True
            probe = end + _RUN
        else:
            probe += _RUN
    return False


def _long_digit_run_translating(data: bytes) -> bool:
    """The same answer from two passes in C (every digit to ``0``, every other byte to a space, then a search):
    the faster way when this module runs interpreted."""
    return b"0" * _RUN in data.translate(_DIGITS_ONLY)


def dumps(value: Any) -> bytes:
    """The official SDK's value: orjson's bytes for a plain value, else ``json.dumps``'s (or its exception)."""
    if _fast_dumps is not None and _plain(value, 0):
        try:
            return _fast_dumps(value)
        except TypeError:  # NOTE: orjson.JSONEncodeError: a big int, a key not exactly str, a lone surrogate.
            pass
    return _ENCODER.encode(value).encode("utf-8")


def _plain(value: object, depth: int) -> bool:
    """Whether ``value`` is made only of the exact types orjson writes as ``json.dumps`` does (same value), with
    finite floats, no deeper than ``_MAX_DEPTH``. Keys and integer ranges are left to orjson, which refuses
    what it would write differently."""
    if type(value) is str or type(value) is int or type(value) is bool or value is None:
        return True
    if type(value) is float:
        return value - value == 0.0  # NOTE: false for NaN and both infinities
    if depth >= _MAX_DEPTH:
        return False
    # PERF: the common scalars are checked in the loops rather than by a call per item.
    if type(value) is dict:
        for item in value.values():
            if type(item) is not str and type(item) is not int and not _plain(item, depth + 1):
                return False
        return True
    if type(value) is list:
        for item in value:
            if type(item) is not str and type(item) is not int and not _plain(item, depth + 1):
                return False
        return True
    if type(value) is tuple:
        for item in value:
            if not _plain(item, depth + 1):
                return False
        return True
    return False
