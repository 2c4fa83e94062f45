"""statefun-workers: Apache Flink Stateful Functions remote functions, served by a production worker pool.

The public API is the official Python SDK's, name for name: replace ``from statefun import ...`` with
``from statefun_workers import ...``.
"""

from ._version import __version__
from .address import SdkAddress
from .context import Context
from .egress import kafka_egress_message, kinesis_egress_message
from .errors import (
    ConfigurationError,
    FunctionError,
    MalformedRequestError,
    RequestError,
    RequestTooLargeError,
    StatefunError,
    UnknownFunctionError,
)
from .functions import StatefulFunction, StatefulFunctions
from .handler import BatchResult, RequestReplyHandler
from .messages import EgressMessage, Message, egress_message_builder, message_builder
from .types import (
    BoolType,
    DoubleType,
    FloatType,
    IntType,
    LongType,
    StringType,
    Type,
    TypeSerializer,
    make_json_type,
    make_protobuf_type,
    simple_type,
)
from .valuespec import ValueSpec

__all__ = [
    # the official SDK's names
    "BoolType",
    "Context",
    "DoubleType",
    "EgressMessage",
    "FloatType",
    "IntType",
    "LongType",
    "Message",
    "RequestReplyHandler",
    "SdkAddress",
    "StatefulFunctions",
    "StringType",
    "Type",
    "TypeSerializer",
    "ValueSpec",
    "egress_message_builder",
    "kafka_egress_message",
    "kinesis_egress_message",
    "make_json_type",
    "make_protobuf_type",
    "message_builder",
    "simple_type",
    # ours
    "BatchResult",
    "ConfigurationError",
    "FunctionError",
    "MalformedRequestError",
    "RequestError",
    "RequestTooLargeError",
    "StatefulFunction",
    "StatefunError",
    "UnknownFunctionError",
    "__version__",
]
