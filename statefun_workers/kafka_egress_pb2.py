"""The generated `kafka_egress` protobuf messages, where the official SDK had them (`statefun.kafka_egress_pb2`)."""

from ._proto.kafka_egress_pb2 import *  # noqa: F403
