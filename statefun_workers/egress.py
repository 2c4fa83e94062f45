"""Builders of Kafka and Kinesis egress records, in the form the runtime's generic egresses read."""

from __future__ import annotations

from struct import Struct
from typing import Any, Final

from . import _wire
from .messages import BuiltEgress, EgressMessage

__all__ = ["kafka_egress_message", "kinesis_egress_message"]

# NOTE: the runtime accepts exactly these typenames for the generic egresses (docs/protocol.md, "Egress records").
KAFKA_RECORD_TYPENAME = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
KINESIS_RECORD_TYPENAME = "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord"

_KAFKA_VALUE_PREFIX: Final = _wire.value_prefix(KAFKA_RECORD_TYPENAME)
_KINESIS_VALUE_PREFIX: Final = _wire.value_prefix(KINESIS_RECORD_TYPENAME)

# Kafka's IntegerSerializer and DoubleSerializer formats: big-endian.
_KAFKA_INT: Final = Struct(">i")
_KAFKA_DOUBLE: Final = Struct(">d")


def _kafka_value_bytes(value: Any, value_type: Any) -> bytes:
    if value_type:
        data: bytes = value_type.serializer().serialize(value)
        return data
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, int):  # bool too, as in the official SDK
        return _KAFKA_INT.pack(value)
    if isinstance(value, float):
        return _KAFKA_DOUBLE.pack(value)
    raise TypeError(f"Unable to convert a {type(value).__name__} to bytes: give a str, bytes, int or float "
                    f"value, or a value_type")


def _check_str(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):  # protobuf accepts UTF-8 bytes for a string field; so do we
        return value.decode("utf-8")
    raise TypeError(f"{name} must be a str, not {type(value).__name__}")


def kafka_egress_message(typename: str, topic: Any, value: Any, value_type: Any = None,
                         key: Any = None) -> EgressMessage:
    """A record for the Kafka egress ``typename``, to ``topic``, with an optional ``key``.

    Without ``value_type``: a ``str`` is sent as UTF-8, ``bytes`` as they are, an ``int`` as a 4-byte and a
    ``float`` as an 8-byte big-endian number (Kafka's own serializers' formats).
    """
    if not topic:
        raise ValueError("A destination Kafka topic is missing")
    if value is None:
        raise ValueError("Missing value")
    if not typename:
        raise ValueError("typename is missing")
    record = _wire.kafka_producer_record(
        "" if key is None else _check_str("key", key), _kafka_value_bytes(value, value_type),
        _check_str("topic", topic))
    return BuiltEgress(typename, _wire.with_value(_KAFKA_VALUE_PREFIX, record))


def kinesis_egress_message(typename: str, stream: Any, value: Any, partition_key: Any, value_type: Any = None,
                           explicit_hash_key: Any = None) -> EgressMessage:
    """A record for the Kinesis egress ``typename``, to ``stream``, under ``partition_key``.

    Without ``value_type``, only ``str`` (sent as UTF-8) and ``bytes`` values are accepted.
    """
    if not stream:
        raise ValueError("Missing destination Kinesis stream")
    if value is None:
        raise ValueError("Missing value")
    if partition_key is None:
        raise ValueError("Missing partition key")
    if value_type:
        data = value_type.serializer().serialize(value)
    elif isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    else:
        raise TypeError(f"Unable to convert a {type(value).__name__} to bytes: give a str or bytes value, "
                        f"or a value_type")
    record = _wire.kinesis_egress_record(
        _check_str("partition_key", partition_key), data, _check_str("stream", stream),
        "" if explicit_hash_key is None else _check_str("explicit_hash_key", explicit_hash_key))
    if not typename:
        raise ValueError("typename is missing")
    return BuiltEgress(typename, _wire.with_value(_KINESIS_VALUE_PREFIX, record))
