# Generated from protos/ by scripts/gen_protos.py (protoc 3.21). DO NOT EDIT.
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class KinesisEgressRecord(_message.Message):
    __slots__ = ["explicit_hash_key", "partition_key", "stream", "value_bytes"]
    EXPLICIT_HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    VALUE_BYTES_FIELD_NUMBER: _ClassVar[int]
    explicit_hash_key: str
    partition_key: str
    stream: str
    value_bytes: bytes
    def __init__(self, partition_key: _Optional[str] = ..., value_bytes: _Optional[bytes] = ..., stream: _Optional[str] = ..., explicit_hash_key: _Optional[str] = ...) -> None: ...
