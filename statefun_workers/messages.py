"""Messages between functions, records for egresses, and their builders."""

from __future__ import annotations

from typing import Any

from ._proto.request_reply_pb2 import TypedValue
from .types import BoolType, DoubleType, FloatType, IntType, LongType, StringType, Type

__all__ = ["EgressMessage", "Message", "egress_message_builder", "message_builder"]


class Message:
    """A message to or from a function: its target address and its value (a ``TypedValue``).

    The typed accessors (``as_int()`` ...) read the value with the given type; like the official SDK's, they
    do not compare typenames (use ``is_int()`` ... for that) and return ``None`` when the message has no value.
    """

    __slots__ = ("target_typename", "target_id", "typed_value")

    def __init__(self, target_typename: str, target_id: str, typed_value: TypedValue) -> None:
        if not target_typename:
            raise ValueError("target_typename can not be missing")
        if not target_id:
            raise ValueError("target_id can not be missing")
        if not typed_value:
            raise ValueError("typed_value can not be missing")
        self.target_typename = target_typename
        self.target_id = target_id
        self.typed_value = typed_value

    def is_int(self) -> bool:
        return self.typed_value.typename == "io.statefun.types/int"

    def as_int(self) -> int | None:
        return self.as_type(IntType)  # type: ignore[no-any-return]

    def is_bool(self) -> bool:
        return self.typed_value.typename == "io.statefun.types/bool"

    def as_bool(self) -> bool | None:
        return self.as_type(BoolType)  # type: ignore[no-any-return]

    def is_long(self) -> bool:
        return self.typed_value.typename == "io.statefun.types/long"

    def as_long(self) -> int | None:
        return self.as_type(LongType)  # type: ignore[no-any-return]

    def is_string(self) -> bool:
        return self.typed_value.typename == "io.statefun.types/string"

    def as_string(self) -> str | None:
        tv = self.typed_value
        # PERF: the most common accessor skips the generic path.
        return StringType.decode(tv.value) if tv.has_value else None  # type: ignore[no-any-return]

    def is_float(self) -> bool:
        return self.typed_value.typename == "io.statefun.types/float"

    def as_float(self) -> float | None:
        return self.as_type(FloatType)  # type: ignore[no-any-return]

    def is_double(self) -> bool:
        return self.typed_value.typename == "io.statefun.types/double"

    def as_double(self) -> float | None:
        return self.as_type(DoubleType)  # type: ignore[no-any-return]

    def is_type(self, tpe: Type) -> bool:
        """Whether the value's typename is ``tpe``'s."""
        return self.typed_value.typename == tpe.typename  # type: ignore[no-any-return]

    def as_type(self, tpe: Type) -> Any:
        """Read the value as ``tpe``, or ``None`` when the message has no value."""
        tv = self.typed_value
        if not tv.has_value:
            return None
        return tpe.serializer().deserialize(tv.value)

    def value_typename(self) -> str:
        """The typename the value was sent with."""
        return self.typed_value.typename  # type: ignore[no-any-return]

    def raw_value(self) -> bytes | None:
        """The value's bytes as received, or ``None`` when the message has no value."""
        tv = self.typed_value
        return tv.value if tv.has_value else None

    def __repr__(self) -> str:
        return (f"Message(target_typename={self.target_typename!r}, target_id={self.target_id!r}, "
                f"value_typename={self.typed_value.typename!r})")


def incoming_message(target_typename: str, target_id: str, typed_value: TypedValue) -> Message:
    """A received message for the function being invoked.

    The runtime's message needs no checks; and unlike the official SDK, an empty instance id (a Kafka record
    with an empty key) is served rather than refused.
    """
    message = Message.__new__(Message)
    message.target_typename = target_typename
    message.target_id = target_id
    message.typed_value = typed_value
    return message


class EgressMessage:
    """A record for the egress named ``typename`` (as declared in the StateFun module)."""

    __slots__ = ("typename", "typed_value")

    def __init__(self, typename: str, typed_value: TypedValue) -> None:
        if not typename:
            raise ValueError("typename is missing")
        if not typed_value:
            raise ValueError("value is missing")
        self.typename = typename
        self.typed_value = typed_value

    def value_typename(self) -> str:
        return self.typed_value.typename  # type: ignore[no-any-return]

    def raw_value(self) -> bytes | None:
        tv = self.typed_value
        return tv.value if tv.has_value else None

    def __repr__(self) -> str:
        return f"EgressMessage(typename={self.typename!r}, value_typename={self.typed_value.typename!r})"


def typed_value(tpe: Type, value: Any) -> TypedValue:
    """Serialize ``value`` as ``tpe`` into a TypedValue."""
    if isinstance(tpe, type) or not hasattr(tpe, "typename"):
        raise TypeError(f"value_type must be a StateFun Type, not {tpe!r}")
    return TypedValue(typename=tpe.typename, has_value=True, value=tpe.serializer().serialize(value))


_KEYWORD_TYPES = {
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
    if len(kwargs) == 2:
        value, value_type = kwargs["value"], kwargs["value_type"]
    elif len(kwargs) == 1:
        keyword, value = next(iter(kwargs.items()))
        value_type = _KEYWORD_TYPES.get(keyword)
    else:
        raise TypeError(f"Wrong number of value keywords given: {kwargs}, there must be exactly one of "
                        f"{', '.join(f'{k}=...' for k in _KEYWORD_TYPES)}, or value=..., value_type=...")
    if value is None:
        raise ValueError("value can not be missing")
    if not value_type:
        raise ValueError("Could not deduce the value type, please specify the type explicitly. via passing: "
                         "value=<the value>, value_type=<the type>")
    return Message(target_typename, target_id, typed_value(value_type, value))


def egress_message_builder(target_typename: str, value: Any, value_type: Type) -> EgressMessage:
    """Build a record for a generic egress; for Kafka and Kinesis use their own builders."""
    if not target_typename:
        raise ValueError("target typename is missing")
    if value is None:
        raise ValueError("value can not be missing")
    if value_type is None:
        raise ValueError("value_type can not be missing")
    return EgressMessage(target_typename, typed_value(value_type, value))
