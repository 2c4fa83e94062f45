"""The generated `kinesis_egress` protobuf messages, where the official SDK had them (`statefun.kinesis_egress_pb2`)."""

from ._proto.kinesis_egress_pb2 import *  # noqa: F403
