"""StateFun types: a typename plus a serializer that turns values into bytes and back.

The six built-in types (``io.statefun.types/*``) are protobuf wrapper messages with the value in field 1
(docs/protocol.md, "Built-in types"). PERF: they are encoded and decoded here by hand for the common cases (an ``int``
in range, a ``str``, a ``bool``, the canonical encoding), which is several times cheaper than a wrapper message;
every other input goes through the generated wrapper class, so acceptance rules and errors stay exactly those of
the installed protobuf runtime. ``tests/core/test_types.py`` checks both paths against the wrapper classes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, Final

from mypy_extensions import mypyc_attr

from . import _json
from ._proto import types_pb2
from ._wire import INT32, INT64, field_bytes, value_prefix

__all__ = [
    "BoolType",
    "DoubleType",
    "FloatType",
    "IntType",
    "LongType",
    "StringType",
    "Type",
    "TypeSerializer",
    "make_json_type",
    "make_protobuf_type",
    "simple_type",
]


@mypyc_attr(allow_interpreted_subclasses=True)
class TypeSerializer(metaclass=abc.ABCMeta):
    """Turns values of one type into bytes and back."""

    __slots__ = ()

    @abc.abstractmethod
    def serialize(self, value: Any) -> bytes:
        """Return the bytes of ``value``."""

    @abc.abstractmethod
    def deserialize(self, byte: bytes) -> Any:
        """Return the value the bytes stand for."""


@mypyc_attr(allow_interpreted_subclasses=True)
class Type(metaclass=abc.ABCMeta):
    """A StateFun type: the typename ``<namespace>/<name>`` that travels with each value, and its serializer."""

    __slots__ = ("typename",)

    def __init__(self, typename: str) -> None:
        if not typename:
            raise ValueError("typename can not be missing")
        self.typename = typename

    @abc.abstractmethod
    def serializer(self) -> TypeSerializer:
        """Return the serializer of this type."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.typename!r})"


class _FunctionSerializer(TypeSerializer):
    """A serializer made of two plain functions."""

    __slots__ = ("serialize_fn", "deserialize_fn")

    def __init__(self, serialize_fn: Callable[[Any], bytes], deserialize_fn: Callable[[bytes], Any]) -> None:
        self.serialize_fn = serialize_fn
        self.deserialize_fn = deserialize_fn

    def serialize(self, value: Any) -> bytes:
        return self.serialize_fn(value)

    def deserialize(self, byte: bytes) -> Any:
        return self.deserialize_fn(byte)


class SimpleType(Type):
    """A user type defined by a serialize and a deserialize function (see :func:`simple_type`)."""

    __slots__ = ("_serializer",)

    def __init__(self, typename: str, serialize_fn: Callable[[Any], bytes] | None,
                 deserialize_fn: Callable[[bytes], Any] | None) -> None:
        super().__init__(typename)
        if not serialize_fn:
            raise ValueError("serialize_fn is missing")
        if not deserialize_fn:
            raise ValueError("deserialize_fn is missing")
        self._serializer = _FunctionSerializer(serialize_fn, deserialize_fn)

    def serializer(self) -> TypeSerializer:
        return self._serializer


def simple_type(typename: str | None = None, serialize_fn: Callable[[Any], bytes] | None = None,
                deserialize_fn: Callable[[bytes], Any] | None = None) -> Type:
    """Define a type by two functions: one from a value to bytes, one from bytes to a value."""
    return SimpleType(typename, serialize_fn, deserialize_fn)  # type: ignore[arg-type]


def make_json_type(typename: str) -> Type:
    """A type whose values are stored as UTF-8 JSON (the official SDK's values and bytes; see ``_json``)."""
    return simple_type(typename=typename, serialize_fn=_json.dumps, deserialize_fn=_json.loads)


def make_protobuf_type(cls: Any, namespace: str | None = None) -> Type:
    """A type for a generated protobuf message class, named ``<namespace>/<message full name>``.

    The namespace defaults to ``type.googleapis.com``, the convention the runtime follows too.
    """
    if not namespace:
        namespace = "type.googleapis.com"
    if not cls:
        raise ValueError("The Protobuf generated class is missing.")
    name = cls.DESCRIPTOR.full_name
    if not name:
        raise TypeError("Unable to deduce the Protobuf Message full name.")

    def serialize(value: Any) -> bytes:
        return value.SerializeToString()  # type: ignore[no-any-return]

    def deserialize(data: bytes) -> Any:
        message = cls()
        message.ParseFromString(data)
        return message

    return simple_type(typename=f"{namespace}/{name}", serialize_fn=serialize, deserialize_fn=deserialize)


# --- built-in types -------------------------------------------------------------------------------------------

def _wrapper_codec(wrapper: Any) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    """Encode and decode through the generated wrapper message: exact, and the fallback of every fast path."""

    def encode(value: Any) -> bytes:
        message = wrapper()
        message.value = value
        return message.SerializeToString()  # type: ignore[no-any-return]

    def decode(data: bytes) -> Any:
        message = wrapper()
        message.ParseFromString(data)
        return message.value

    return encode, decode


_encode_int_slow, _decode_int_slow = _wrapper_codec(types_pb2.IntWrapper)
_encode_long_slow, _decode_long_slow = _wrapper_codec(types_pb2.LongWrapper)
_encode_bool_slow, _decode_bool_slow = _wrapper_codec(types_pb2.BooleanWrapper)
_encode_str_slow, _decode_str_slow = _wrapper_codec(types_pb2.StringWrapper)
_encode_float, _decode_float = _wrapper_codec(types_pb2.FloatWrapper)
_encode_double, _decode_double = _wrapper_codec(types_pb2.DoubleWrapper)

_INT32_MIN: Final = -(1 << 31)
_INT32_MAX: Final = (1 << 31) - 1
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


def _encode_int(value: Any) -> bytes:
    if type(value) is int and _INT32_MIN <= value <= _INT32_MAX:
        return b"\x0d" + INT32.pack(value) if value else b""
    return _encode_int_slow(value)


def _decode_int(data: bytes) -> Any:
    if not data:
        return 0
    if len(data) == 5 and data[0] == 0x0D:
        return INT32.unpack_from(data, 1)[0]
    return _decode_int_slow(data)


def _encode_long(value: Any) -> bytes:
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
        return b"\x09" + INT64.pack(value) if value else b""
    return _encode_long_slow(value)


def _decode_long(data: bytes) -> Any:
    if not data:
        return 0
    if len(data) == 9 and data[0] == 0x09:
        return INT64.unpack_from(data, 1)[0]
    return _decode_long_slow(data)


def _encode_bool(value: Any) -> bytes:
    if value is True:
        return b"\x08\x01"
    if value is False:
        return b""
    return _encode_bool_slow(value)


def _decode_bool(data: bytes) -> Any:
    if not data:
        return False
    if data == b"\x08\x01":
        return True
    return _decode_bool_slow(data)


def _encode_str(value: Any) -> bytes:
    if type(value) is str:
        if not value:
            return b""
        try:
            return field_bytes(b"\x0a", value.encode("utf-8"))
        except UnicodeEncodeError:
            pass  # lone surrogates: let protobuf raise its own error
    return _encode_str_slow(value)


def _decode_str(data: bytes) -> Any:
    if not data:
        return ""
    # One tag byte, a one-byte length (< 128) that covers the rest exactly: the canonical short string.
    if data[0] == 0x0A and len(data) >= 2 and data[1] < 128 and len(data) == 2 + data[1]:
        try:
            return data[2:].decode("utf-8")
        except UnicodeDecodeError:
            pass  # let protobuf raise its own error
    return _decode_str_slow(data)


# Normalizers: what a value reads back as once stored (an int-like object becomes an int, a float is rounded to
# 32 bits by FloatType, bytes become str ...), raising what the wrapper raises for a value it refuses. The
# common cases cost a type check; everything else makes the round trip through the wrapper message.

def _normalize_int(value: Any) -> Any:
    if type(value) is int and _INT32_MIN <= value <= _INT32_MAX:
        return value
    return _decode_int_slow(_encode_int_slow(value))


def _normalize_long(value: Any) -> Any:
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return _decode_long_slow(_encode_long_slow(value))


def _normalize_bool(value: Any) -> Any:
    if value is True or value is False:
        return value
    return _decode_bool_slow(_encode_bool_slow(value))


def _normalize_str(value: Any) -> Any:
    if type(value) is str and (value.isascii() or _encodable(value)):
        return value
    return _decode_str_slow(_encode_str_slow(value))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _normalize_float(value: Any) -> Any:
    return _decode_float(_encode_float(value))


def _normalize_double(value: Any) -> Any:
    if type(value) is float:
        return value
    return _decode_double(_encode_double(value))


class _BuiltinSerializer(TypeSerializer):
    __slots__ = ("_encode", "_decode")

    def __init__(self, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]) -> None:
        self._encode = encode
        self._decode = decode

    def serialize(self, value: Any) -> bytes:
        return self._encode(value)

    def deserialize(self, byte: bytes) -> Any:
        return self._decode(byte)


class BuiltinType(Type):
    """One of the six ``io.statefun.types/*`` wrapper types.

    ``normalize`` turns a value into what it reads back as once stored, and raises what the wrapper message
    raises for a value it refuses, without encoding the common cases: a state assignment is checked and
    normalized at once (the official SDK encoded at once and decoded at every read), and encoded once, at the
    end of the batch.
    """

    __slots__ = ("encode", "decode", "normalize", "value_prefix", "_serializer")

    def __init__(self, typename: str, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any],
                 normalize: Callable[[Any], Any]) -> None:
        super().__init__(typename)
        self.encode = encode
        self.decode = decode
        self.normalize = normalize
        self.value_prefix = value_prefix(typename)
        """The TypedValue fields before the value (typename, has_value), encoded once."""
        self._serializer = _BuiltinSerializer(encode, decode)

    def serializer(self) -> TypeSerializer:
        return self._serializer


BoolType = BuiltinType("io.statefun.types/bool", _encode_bool, _decode_bool, _normalize_bool)
IntType = BuiltinType("io.statefun.types/int", _encode_int, _decode_int, _normalize_int)
FloatType = BuiltinType("io.statefun.types/float", _encode_float, _decode_float, _normalize_float)
LongType = BuiltinType("io.statefun.types/long", _encode_long, _decode_long, _normalize_long)
DoubleType = BuiltinType("io.statefun.types/double", _encode_double, _decode_double, _normalize_double)
StringType = BuiltinType("io.statefun.types/string", _encode_str, _decode_str, _normalize_str)


def codec(tpe: Type) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    """Resolve a type's encode and decode functions once (at bind time for state, not per value)."""
    if isinstance(tpe, BuiltinType):
        return tpe.encode, tpe.decode
    serializer = tpe.serializer()
    return serializer.serialize, serializer.deserialize
