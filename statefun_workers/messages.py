"""Messages between functions, records for egresses, and their builders."""

from __future__ import annotations

from typing import Any

from mypy_extensions import mypyc_attr

from ._proto.request_reply_pb2 import TypedValue
from ._read import Value
from ._wire import present_value, with_value
from .types import BoolType, BuiltinType, DoubleType, FloatType, IntType, LongType, StringType, Type

__all__ = ["EgressMessage", "Message", "egress_message_builder", "message_builder"]


@mypyc_attr(allow_interpreted_subclasses=True)
class _Value:
    """The value part shared by messages and egress records.

    PERF: a received value is the reader's ``Value`` (typename, has_value, value, and the payload it came
    from); a built one is kept as its encoded bytes, which go to the response as they are. ``typed_value``
    makes a protobuf ``TypedValue`` of either only when user code asks for one.
    """

    __slots__ = ("_typed_value", "_encoded", "_received")

    def __init__(self) -> None:
        self._typed_value: TypedValue | None = None
        self._encoded: bytes | None = None
        self._received: Value | None = None

    @property
    def typed_value(self) -> TypedValue:
        """The value as a protobuf ``TypedValue`` (typename, has_value, value)."""
        tv = self._typed_value
        if tv is None:
            received = self._received
            data = received.payload if received is not None else self._encoded
            assert data is not None  # one of the three is always set
            tv = self._typed_value = TypedValue.FromString(data)
        return tv

    @typed_value.setter
    def typed_value(self, value: TypedValue) -> None:
        self._typed_value = value
        self._encoded = None
        self._received = None

    # PERF: the accessors read a received Value's fields directly (native attributes once compiled) and go
    #   through a TypedValue only for a value that came from elsewhere.

    def _typename(self) -> str:
        received = self._received
        if received is not None:
            return received.typename
        typename: str = self.typed_value.typename
        return typename

    def _data(self) -> bytes | None:
        """The value's bytes, or None when it has no value."""
        received = self._received
        if received is not None:
            return received.value if received.has_value else None
        tv = self.typed_value
        return tv.value if tv.has_value else None

    def encoded_value(self) -> bytes:
        """The TypedValue's bytes, as they go into a response."""
        encoded = self._encoded
        if encoded is None:
            encoded = self.typed_value.SerializeToString()
        return encoded

    def value_typename(self) -> str:
        """The typename the value was sent with."""
        return self._typename()

    def raw_value(self) -> bytes | None:
        """The value's bytes as received, or ``None`` when there is no value."""
        return self._data()


@mypyc_attr(allow_interpreted_subclasses=True)
class Message(_Value):
    """A message to or from a function: its target address and its value (a ``TypedValue``).

    The typed accessors (``as_int()`` ...) read the value with the given type; like the official SDK's, they
    do not compare typenames (use ``is_int()`` ... for that) and return ``None`` when the message has no value.
    """

    __slots__ = ("target_typename", "target_id")

    def __init__(self, target_typename: str, target_id: str, typed_value: Any) -> None:
        if not target_typename:
            raise ValueError("target_typename can not be missing")
        if not target_id:
            raise ValueError("target_id can not be missing")
        if not typed_value:
            raise ValueError("typed_value can not be missing")
        self.target_typename = target_typename
        self.target_id = target_id
        self._typed_value = typed_value
        self._encoded = None
        self._received = None

    def is_int(self) -> bool:
        return self._typename() == "io.statefun.types/int"

    def as_int(self) -> int | None:
        return self.as_type(IntType)  # type: ignore[no-any-return]

    def is_bool(self) -> bool:
        return self._typename() == "io.statefun.types/bool"

    def as_bool(self) -> bool | None:
        return self.as_type(BoolType)  # type: ignore[no-any-return]

    def is_long(self) -> bool:
        return self._typename() == "io.statefun.types/long"

    def as_long(self) -> int | None:
        return self.as_type(LongType)  # type: ignore[no-any-return]

    def is_string(self) -> bool:
        return self._typename() == "io.statefun.types/string"

    def as_string(self) -> str | None:
        # PERF: the most common accessor skips the generic path.
        data = self._data()
        return None if data is None else StringType.decode(data)

    def is_float(self) -> bool:
        return self._typename() == "io.statefun.types/float"

    def as_float(self) -> float | None:
        return self.as_type(FloatType)  # type: ignore[no-any-return]

    def is_double(self) -> bool:
        return self._typename() == "io.statefun.types/double"

    def as_double(self) -> float | None:
        return self.as_type(DoubleType)  # type: ignore[no-any-return]

    def is_type(self, tpe: Any) -> bool:
        """Whether the value's typename is ``tpe``'s."""
        return bool(self._typename() == tpe.typename)

    def as_type(self, tpe: Any) -> Any:
        """Read the value as ``tpe``, or ``None`` when the message has no value."""
        data = self._data()
        return None if data is None else tpe.serializer().deserialize(data)

    def __repr__(self) -> str:
        return (f"Message(target_typename={self.target_typename!r}, target_id={self.target_id!r}, "
                f"value_typename={self.value_typename()!r})")


class ReceivedMessage(Message):
    """A message the runtime sent to the function being invoked.

    PERF: made once per message, without the public constructor's checks: the runtime's message needs none.
    Unlike the official SDK, an empty instance id (a Kafka record with an empty key) is served, not refused.
    """

    __slots__ = ()

    def __init__(self, target_typename: str, target_id: str, received: Value) -> None:
        self.target_typename = target_typename
        self.target_id = target_id
        self._typed_value = None
        self._encoded = None
        self._received = received


class BuiltMessage(Message):
    """A message made by a builder, its TypedValue already encoded (the builder checked its arguments)."""

    __slots__ = ()

    def __init__(self, target_typename: str, target_id: str, encoded: bytes) -> None:
        self.target_typename = target_typename
        self.target_id = target_id
        self._typed_value = None
        self._encoded = encoded
        self._received = None


@mypyc_attr(allow_interpreted_subclasses=True)
class EgressMessage(_Value):
    """A record for the egress named ``typename`` (as declared in the StateFun module)."""

    __slots__ = ("typename",)

    def __init__(self, typename: str, typed_value: Any) -> None:
        if not typename:
            raise ValueError("typename is missing")
        if not typed_value:
            raise ValueError("value is missing")
        self.typename = typename
        self._typed_value = typed_value
        self._encoded = None
        self._received = None

    def __repr__(self) -> str:
        return f"EgressMessage(typename={self.typename!r}, value_typename={self.value_typename()!r})"


class BuiltEgress(EgressMessage):
    """An egress record made by a builder, its TypedValue already encoded (the builder checked its arguments)."""

    __slots__ = ()

    def __init__(self, typename: str, encoded: bytes) -> None:
        self.typename = typename
        self._typed_value = None
        self._encoded = encoded
        self._received = None


def encode_value(tpe: Any, value: Any) -> bytes:
    """Serialize ``value`` as ``tpe`` into the bytes of a TypedValue."""
    if type(tpe) is BuiltinType:
        return with_value(tpe.value_prefix, tpe.encode(value))
    if isinstance(tpe, type) or not hasattr(tpe, "typename"):
        raise TypeError(f"value_type must be a StateFun Type, not {tpe!r}")
    return present_value(tpe.typename, tpe.serializer().serialize(value))


_KEYWORD_TYPES: dict[str, Type] = {
    "int_value": IntType,
    "float_value": FloatType,
    "long_value": LongType,
    "str_value": StringType,
    "double_value": DoubleType,
    "bool_value": BoolType,
}


def message_builder(target_typename: str, target_id: str, **kwargs: Any) -> Message:
    """Build a message for ``target_typename``/``target_id``.

    Give the value as exactly one of ``int_value``, ``float_value``, ``long_value``, ``str_value``,
    ``double_value``, ``bool_value``, or as ``value=...`` together with ``value_type=<a Type>``.
    """
    value_type: Any
    if len(kwargs) == 1:
        ((keyword, value),) = kwargs.items()
        value_type = _KEYWORD_TYPES.get(keyword)
    elif len(kwargs) == 2:
        value, value_type = kwargs["value"], kwargs["value_type"]
    else:
        raise TypeError(f"Wrong number of value keywords given: {kwargs}, there must be exactly one of "
                        f"{', '.join(f'{k}=...' for k in _KEYWORD_TYPES)}, or value=..., value_type=...")
    if value is None:
        raise ValueError("value can not be missing")
    if not value_type:
        raise ValueError("Could not deduce the value type, please specify the type explicitly. via passing: "
                         "value=<the value>, value_type=<the type>")
    encoded = encode_value(value_type, value)
    # NOTE: after encoding, as the official SDK, so that a bad value and a bad target raise the same error.
    if not target_typename:
        raise ValueError("target_typename can not be missing")
    if not target_id:
        raise ValueError("target_id can not be missing")
    return BuiltMessage(target_typename, target_id, encoded)


def egress_message_builder(target_typename: str, value: Any, value_type: Any) -> EgressMessage:
    """Build a record for a generic egress; for Kafka and Kinesis use their own builders."""
    if not target_typename:
        raise ValueError("target typename is missing")
    if value is None:
        raise ValueError("value can not be missing")
    if value_type is None:
        raise ValueError("value_type can not be missing")
    return BuiltEgress(target_typename, encode_value(value_type, value))
