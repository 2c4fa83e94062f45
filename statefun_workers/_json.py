"""JSON values of ``make_json_type``: the official SDK's exact values and bytes, in less time.

The official SDK reads with ``json.loads`` and writes ``json.dumps(value, ensure_ascii=False)`` as UTF-8; a
2 KB state costs about 30 µs each way, which is most of a request that holds one. Here:

* reading uses orjson (about 4x faster) when it is installed and is sure to give the value ``json.loads``
  gives. orjson refuses what it cannot read exactly like ``json.loads`` (NaN and Infinity, a byte-order mark,
  lone surrogates, UTF-16 or UTF-32 text, nesting past 1024), and those inputs go to ``json.loads``. The one
  value it reads differently, an integer outside 64 bits (orjson answers a float), cannot happen without a run
  of 19 or more digits, and any text with such a run goes to ``json.loads`` as well. One difference remains,
  in our favour: text nested nearly 1,000 deep, which ``json.loads`` refuses with ``RecursionError``, is read;
* writing keeps the standard library's encoder, built once instead of on every call as ``json.dumps`` does
  with non-default arguments: same bytes, about 20% less time. (orjson's output is formatted differently.)

``tests/core/test_json.py`` holds both to the standard library on generated values and texts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]

try:
    from orjson import loads as _orjson_loads
except ImportError:  # NOTE: orjson is a dependency, but a platform without its wheels may go without.
    _fast_loads: Callable[[Any], Any] | None = None
else:
    _fast_loads = _orjson_loads

_ENCODER = json.JSONEncoder(ensure_ascii=False)
"""What ``json.dumps(value, ensure_ascii=False)`` builds on each call."""

_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
"""A ``bytes.translate`` table: every digit to ``0``, every other byte to a space."""

_LONG_DIGIT_RUN = b"0" * 19
"""After translation, where an integer of 19 digits or more could be: 2**63 has 19 digits."""


def loads(data: Any) -> Any:
    """``json.loads(data)``: the same value, or the same exception."""
    if _fast_loads is not None and type(data) is bytes and _LONG_DIGIT_RUN not in data.translate(_DIGITS_ONLY):
        try:
            return _fast_loads(data)
        except ValueError:  # NOTE: orjson.JSONDecodeError; json.loads decides, and raises its own error.
            pass
    return json.loads(data)


def dumps(value: Any) -> bytes:
    """``json.dumps(value, ensure_ascii=False).encode("utf-8")``: the official SDK's bytes."""
    return _ENCODER.encode(value).encode("utf-8")
