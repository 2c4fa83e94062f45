"""The generated `request_reply` protobuf messages, where the official SDK had them (`statefun.request_reply_pb2`)."""

from ._proto.request_reply_pb2 import *  # noqa: F403
