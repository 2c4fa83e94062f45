"""The generated `types` protobuf messages, where the official SDK had them (`statefun.types_pb2`)."""

from ._proto.types_pb2 import *  # noqa: F403
